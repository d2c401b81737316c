import { open, rename, rm } from "node:fs/promises";

/**
 * Writes the chunks to a temporary sibling of `path` and renames it into place, so readers never see a partial file.
 * `onProgress` receives the bytes written so far after each chunk.
 */
export async function writeFileAtomically(
  path: string,
  chunks: Iterable<Buffer> | AsyncIterable<Buffer>,
  onProgress?: (writtenBytes: number) => void,
): Promise<void> {
  const temporaryPath = `${path}.${process.pid}.partial`;
  const handle = await open(temporaryPath, "w");
  try {
    let writtenBytes = 0;
    for await (const chunk of chunks) {
      await handle.write(chunk);
      writtenBytes += chunk.length;
      onProgress?.(writtenBytes);
    }
    await handle.close();
    await rename(temporaryPath, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temporaryPath, { force: true });
    throw error;
  }
}
