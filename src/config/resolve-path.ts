/** Filesystem paths in the configuration, made absolute against the directory of the source that set them. */
import path from "node:path";
import type { ConfigKey } from "./config-schema.ts";

/** Keys holding filesystem paths. */
export const PATH_KEYS: readonly ConfigKey[] = ["model", "modelsDir", "cacheDir", "apiKeyFile", "draftModel"];

export function resolvePath(baseDir: string, value: string): string {
  // Leave URIs such as hf:owner/repo/file.gguf alone; a two-letter minimum keeps Windows drive letters as paths.
  return /^[a-z][a-z0-9+.-]+:/i.test(value) ? value : path.resolve(baseDir, value);
}
