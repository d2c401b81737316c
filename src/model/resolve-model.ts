/**
 * Decides which GGUF to serve: the configured one, else the first `*.gguf` in the models folder, else a small
 * synthetic model written once into the cache folder so `npm start` always serves something.
 */
import { access, mkdir, readdir } from "node:fs/promises";
import path from "node:path";
import { DEFAULT_SYNTHETIC_SHAPE, writeSyntheticLlama } from "../gguf/synthetic-model.ts";

export interface ModelSourceOptions {
  readonly model?: string | undefined;
  readonly modelAlias?: string | undefined;
  readonly modelsDir: string;
  readonly cacheDir: string;
}

export interface ResolvedModel {
  readonly path: string;
  /** The id in `/v1/models`. */
  readonly alias: string;
  /** True when the weights are random and the output meaningless. */
  readonly isSynthetic: boolean;
}

export class ModelNotFoundError extends Error {
  override readonly name = "ModelNotFoundError";
  readonly code = "PAGODA_ERR_MODEL_FILE";
}

export const SYNTHETIC_MODEL_ALIAS = "pagoda-synthetic";

export async function resolveModel(options: ModelSourceOptions): Promise<ResolvedModel> {
  if (options.model !== undefined) {
    if (!(await exists(options.model))) throw new ModelNotFoundError(`--model: no file at ${options.model}`);
    return { path: options.model, alias: options.modelAlias ?? aliasOf(options.model), isSynthetic: false };
  }
  const found = await firstGguf(options.modelsDir);
  if (found !== null) return { path: found, alias: options.modelAlias ?? aliasOf(found), isSynthetic: false };
  const shape = DEFAULT_SYNTHETIC_SHAPE;
  const fileName = `synthetic-llama-v${shape.vocabSize}-d${shape.embeddingLength}-l${shape.blockCount}-${shape.tensorType.toLowerCase()}.gguf`;
  const syntheticPath = path.join(options.cacheDir, fileName);
  if (!(await exists(syntheticPath))) {
    await mkdir(options.cacheDir, { recursive: true });
    await writeSyntheticLlama(syntheticPath);
  }
  return { path: syntheticPath, alias: options.modelAlias ?? SYNTHETIC_MODEL_ALIAS, isSynthetic: true };
}

function aliasOf(modelPath: string): string {
  return path.basename(modelPath).replace(/\.gguf$/i, "");
}

async function exists(filePath: string): Promise<boolean> {
  try {
    await access(filePath);
    return true;
  } catch {
    return false;
  }
}

async function firstGguf(directory: string): Promise<string | null> {
  try {
    const names = (await readdir(directory)).filter((name) => name.toLowerCase().endsWith(".gguf")).sort();
    return names[0] === undefined ? null : path.join(directory, names[0]);
  } catch {
    return null;
  }
}
