const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/**
 * 1.50 GiB, 12.34 MiB, 16.00 KiB or 512 B: the unit a reader expects at that size. The one byte format of every
 * report (`pagoda plan`, `pagoda synth`, the server's startup summary); it lives with the file format, the lowest
 * layer, so that both tools can use it.
 */
export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(2)} GiB`;
  if (bytes >= MIB / 10) return `${(bytes / MIB).toFixed(2)} MiB`;
  if (bytes >= KIB) return `${(bytes / KIB).toFixed(2)} KiB`;
  return `${bytes} B`;
}
