/** Small helpers for tests that write GGUF files and compare their headers. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ggmlTensorBytes, ggmlTypeInfo } from "../../src/gguf/ggml-types.ts";
import type { GgufKv } from "../../src/gguf/gguf-kv.ts";
import type { GgufHeader, GgufTensorInfo } from "../../src/gguf/gguf-reader.ts";
import { runSynthCommand } from "../../src/gguf/synth-command.ts";

/** Runs `run` with a fresh temporary directory named `pagoda-<label>-…`, removed afterwards. */
export async function withTempDir<T>(label: string, run: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `pagoda-${label}-`));
  try {
    return await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function byteLengthOf(tensor: GgufTensorInfo): number {
  return ggmlTensorBytes(ggmlTypeInfo(tensor.ggmlType), tensor.dims);
}

export function withoutKeys(header: GgufHeader, keys: readonly string[]): GgufKv[] {
  return header.metadata.filter((kv) => !keys.includes(kv.key));
}

export function metadataValue(header: GgufHeader, key: string): unknown {
  return header.metadata.find((kv) => kv.key === key)?.value;
}

/** Runs `pagoda synth` with `argv`, capturing its exit code and output. */
export async function synth(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runSynthCommand(argv, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  return { code, stdout, stderr };
}
