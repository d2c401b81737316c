import path from "node:path";

/**
 * One `--embedding-model` or `--rerank-model` entry, as the server and `pagoda plan` both read it: `NAME=PATH`, or a
 * path whose id is its file name without extension. A name never holds a path separator, so "a=b/c.gguf" is named
 * and "dir=x/m.gguf" with a slash before "=" is not.
 */
export function parsePooledModelEntry(entry: string): { readonly modelId: string; readonly modelPath: string } {
  const named = /^([^=/\\]+)=(.+)$/.exec(entry);
  const modelPath = named?.[2] ?? entry;
  return { modelId: named?.[1] ?? path.basename(modelPath).replace(/\.gguf$/i, ""), modelPath };
}
