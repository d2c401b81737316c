/**
 * Benchmark models bigger than stories260K, written by the project's GGUF writer: `--synthetic DxL` is a
 * random-weight llama of embedding size D and L layers (vocabulary 4096, F16). Its output is meaningless; its
 * speed and memory are those of its shape.
 *
 * `--widen-ffn N` makes a speculative-decoding target from a real model: the source with every feed-forward widened
 * to N units whose extra units add a perturbation (see src/gguf/widen-ffn.ts); the source is then its draft.
 */
import { access, mkdir } from "node:fs/promises";
import path from "node:path";
import { writeSyntheticLlama } from "../src/gguf/synthetic-model.ts";
import { widenFeedForward } from "../src/gguf/widen-ffn.ts";

export async function syntheticModel(shape: string, cacheDir: string): Promise<string> {
  const [dim, layers] = shape.split("x").map(Number);
  if (dim === undefined || layers === undefined || !(dim > 0) || !(layers > 0))
    throw new Error(`--synthetic: expected DxL, got ${shape}`);
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

/** The widened target of `source`, written once per (source, width, perturbation) into `cacheDir`. */
export async function widenedModel(
  source: string,
  feedForwardLength: number,
  perturbation: number,
  cacheDir: string,
): Promise<string> {
  if (!Number.isSafeInteger(feedForwardLength) || feedForwardLength < 1)
    throw new Error(`--widen-ffn: expected a unit count, got ${feedForwardLength}`);
  const file = path.join(cacheDir, `${path.basename(source, ".gguf")}-wide-${feedForwardLength}-p${perturbation}.gguf`);
  const exists = await access(file).then(
    () => true,
    () => false,
  );
  if (exists) return file;
  await mkdir(cacheDir, { recursive: true });
  // The writer goes through a temporary sibling, so an interrupted run leaves no truncated model under this name.
  await widenFeedForward(source, file, { feedForwardLength, perturbation, seed: 1 });
  return file;
}
