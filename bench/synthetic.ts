/**
 * Benchmark models bigger than stories260K, written by the project's GGUF writer: `--synthetic DxL` is a
 * random-weight llama of embedding size D and L layers (vocabulary 4096, F16). Its output is meaningless; its
 * speed and memory are those of its shape.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { writeSyntheticLlama } from "../src/gguf/synthetic-model.ts";

export async function syntheticModel(shape: string, cacheDir: string): Promise<string> {
  const [dim, layers] = shape.split("x").map(Number);
  if (dim === undefined || layers === undefined || !(dim > 0) || !(layers > 0)) throw new Error(`--synthetic: expected DxL, got ${shape}`);
  const file = path.join(cacheDir, `bench-synthetic-${dim}x${layers}.gguf`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeSyntheticLlama(file, {
    vocabSize: 4096,
    embeddingLength: dim,
    blockCount: layers,
    headCount: dim / 64,
    headCountKv: Math.max(1, dim / 256),
    feedForwardLength: dim * 3,
    contextLength: 4096,
    tensorType: "F16",
  });
  return file;
}
