/**
 * What a `LlamaEngine` is asked for, and what it settles on once it knows the backend and whether the loaded addon
 * carries pagoda's patch.
 */
import type { GpuOption } from "./llama-loader.ts";
import type { Pooling } from "./llama-pooling-context.ts";

/** Inputs embedded together in one decode, as llama-server benchmarks are run (`--embeddings -np 32`). */
export const DEFAULT_EMBEDDING_SEQUENCES = 32;

export type FlashAttentionOption = "auto" | "on" | "off";
/** "shared": one KV pool for all sequences (needs the patched addon); "slabs": `contextSize` cells per sequence. */
export type KvLayout = "shared" | "slabs";

export interface LlamaEngineOptions {
  readonly modelPath: string;
  /** Threads of each decode. Defaults to the caller's choice; there is no safe library default on small machines. */
  readonly threads: number;
  /** Sequence slots for running requests. */
  readonly numSequences: number;
  /** Most tokens of one sequence. */
  readonly contextSize: number;
  /** Cells of the shared pool. Defaults to contextSize × numSequences; ignored with slabs. */
  readonly kvCacheTokens?: number;
  /** Defaults to "shared", which falls back to "slabs" (with `onNativeLog` told why) when the addon is stock. */
  readonly kvLayout?: KvLayout;
  /** Most tokens per step. */
  readonly batchSize: number;
  readonly gpu: GpuOption;
  /** "auto" is on for GPU backends and off on CPU. Defaults to "auto". */
  readonly flashAttention?: FlashAttentionOption;
  /** Inputs embedded in one decode of the embedding context. Defaults to 32. */
  readonly embeddingSequences?: number;
  /** Embedding inputs waiting before requests are refused. Defaults to 8,192. */
  readonly maxWaitingEmbeddingInputs?: number;
  /** The embedding context's KV: see `LlamaPoolingContextOptions.kvLayout`. Defaults to "pool", the smaller. */
  readonly embeddingKvLayout?: "slabs" | "pool";
  /** How embeddings pool token vectors; defaults to the GGUF's pooling, or `last` for a generative model. */
  readonly pooling?: Pooling;
  /** A Jinja template file or a built-in template name; null or absent takes the GGUF's. */
  readonly chatTemplate?: string | null;
  /** Receives llama.cpp's own log lines at warn level and above. */
  readonly onNativeLog?: (level: "error" | "warn", message: string) => void;
  /** Receives the model's load progress, 0 to 1. */
  readonly onLoadProgress?: (progress: number) => void;
}

export interface ResolvedLlamaEngineOptions extends Omit<LlamaEngineOptions, "flashAttention"> {
  readonly kvLayout: KvLayout;
  readonly kvCacheTokens: number;
  readonly flashAttention: boolean;
}

/** The options with every default applied; a shared pool asked of a stock addon becomes slabs, with a warning. */
export function resolveLlamaEngineOptions(
  options: LlamaEngineOptions,
  isGpu: boolean,
  isPatched: boolean,
): ResolvedLlamaEngineOptions {
  const wantsShared = (options.kvLayout ?? "shared") === "shared";
  if (wantsShared && !isPatched) {
    options.onNativeLog?.(
      "warn",
      "the llama addon lacks pagoda's patch (npm run build:addon): one KV slab per sequence, no prefix cache",
    );
  }
  const isShared = wantsShared && isPatched;
  return {
    ...options,
    kvLayout: isShared ? "shared" : "slabs",
    kvCacheTokens: isShared
      ? (options.kvCacheTokens ?? options.contextSize * options.numSequences)
      : options.contextSize * options.numSequences,
    flashAttention: resolveFlashAttention(options.flashAttention ?? "auto", isGpu, isShared),
  };
}

/**
 * "auto": on for GPU backends and for the shared pool. The shared pool's attention spans every occupied cell and
 * masks the other sequences' ones; llama.cpp's CPU flash-attention kernel skips masked cells, the plain path
 * computes them (16 sequences of stories260K: 8.1 vs 15.5 ms per step). With slabs on CPU, flash attention was
 * slower (4.7 vs 6.1 ms), so it stays off there.
 */
export function resolveFlashAttention(option: FlashAttentionOption, isGpu: boolean, isKvShared: boolean): boolean {
  if (option === "on") return true;
  if (option === "off") return false;
  return isGpu || isKvShared;
}
