import type { GgufModelInfo } from "./gguf-model-info.ts";
import { KV_CELL_PADDING } from "./kv-budget.ts";
import type { KvCacheType, PlanOptions } from "./memory-plan.ts";

/** node-llama-cpp and llama.cpp both pad context sizes to this many cells. */
const CONTEXT_PAD = KV_CELL_PADDING;

const padUp = (value: number, padding: number): number => Math.ceil(value / padding) * padding;

/** How llama.cpp lays out the context for these options. */
export interface ContextLayout {
  readonly numSequences: number;
  readonly isKvUnified: boolean;
  /** KV streams: one per sequence, or one shared pool. */
  readonly numKvStreams: number;
  /** Cells each stream has for full-attention layers (`n_ctx_seq`). */
  readonly kvCellsPerStream: number;
  /** Cells each stream has for sliding-window layers; equals `kvCellsPerStream` without sliding windows. */
  readonly swaKvCellsPerStream: number;
  /** Total context (`n_ctx`). */
  readonly contextTokens: number;
  readonly batchSize: number;
  readonly ubatchSize: number;
  readonly flashAttention: boolean;
  readonly kvType: KvCacheType;
}

/** Mirrors `LlamaContext` (node-llama-cpp) and `llama_context`'s constructor (llama.cpp). */
export function resolveContextLayout(model: GgufModelInfo, options: PlanOptions): ContextLayout {
  const sequences = options.parallel;
  const isUnified = options.kvCacheTokens != null;
  const isQuantized = options.kvType === "q8_0" || options.kvType === "q4_0";
  // The engine's "auto" on CPU: on for the shared pool, whose attention would otherwise compute every masked cell.
  const flashAttention = options.flashAttention ?? (isQuantized || isUnified);
  if (isQuantized && !flashAttention)
    throw new RangeError(`a ${options.kvType} V cache needs flash attention; llama.cpp refuses it without`);

  let contextTokens: number;
  let cellsPerStream: number;
  if (isUnified) {
    contextTokens = padUp(options.kvCacheTokens!, CONTEXT_PAD);
    cellsPerStream = contextTokens;
  } else {
    // node-llama-cpp pads each sequence's context up unless that would pass the training context.
    let perSequence = options.ctxSize;
    const padded = padUp(Math.max(2, perSequence), CONTEXT_PAD);
    const train = model.contextLength;
    if (train !== null && perSequence <= train && padded < train) perSequence = padded;
    const requested = padUp(perSequence * sequences, CONTEXT_PAD);
    cellsPerStream = padUp(Math.floor(requested / sequences), CONTEXT_PAD);
    contextTokens = cellsPerStream * sequences;
  }

  // node-llama-cpp reserves one extra batch slot for models with sliding windows.
  const extraSlot = model.slidingWindow !== null ? 1 : 0;
  const batchSize = Math.min(contextTokens, Math.max(options.batchSize, sequences) + extraSlot);
  const ubatchSize = Math.min(batchSize, options.ubatchSize ?? batchSize);
  const window = model.slidingWindow;
  const swaCells =
    window === null
      ? cellsPerStream
      : padUp(Math.min(cellsPerStream, window * (isUnified ? sequences : 1) + ubatchSize), CONTEXT_PAD);
  return {
    numSequences: sequences,
    isKvUnified: isUnified,
    numKvStreams: isUnified ? 1 : sequences,
    kvCellsPerStream: cellsPerStream,
    swaKvCellsPerStream: swaCells,
    contextTokens,
    batchSize,
    ubatchSize,
    flashAttention,
    kvType: options.kvType,
  };
}
