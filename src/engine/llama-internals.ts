/**
 * Narrow types for the parts of node-llama-cpp's internals that pagoda drives directly. The engine loop issues
 * one native batch per step itself, because the library's dispatcher, fed one `evaluate()` per sequence, merges
 * only N−1 of N sequences into a decode. These members are private to node-llama-cpp, so the version is pinned
 * exactly and `getInternals` checks their shape at start-up instead of failing mid-request.
 */
import type { LlamaContext, LlamaModel } from "node-llama-cpp";

export interface NativeSampler {
  applyConfig(config: NativeSamplerConfig): void;
  dispose(): void;
}

export interface NativeSamplerConfig {
  temperature?: number;
  minP?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  repeatPenalty?: number;
  repeatPenaltyMaxTokens?: number;
  repeatPenaltyTokens?: Uint32Array;
  repeatPenaltyPresencePenalty?: number;
  repeatPenaltyFrequencyPenalty?: number;
}

export interface NativeContext {
  initBatch(size: number): void;
  addToBatch(sequenceId: number, firstTokenSequenceIndex: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array;
  decodeBatch(): Promise<void>;
  sampleToken(
    batchLogitIndex: number,
    sampler: NativeSampler,
    probabilities: boolean,
    confidence?: boolean,
  ): Promise<[token: number, probabilities: number[] | undefined, confidence: number | undefined]>;
  removeTokenCellsFromSequence(sequenceId: number, startPos: number, endPos: number): boolean;
}

interface NativeSamplerConstructor {
  new (model: unknown): NativeSampler;
}

export interface LlamaInternals {
  readonly context: NativeContext;
  createSampler(): NativeSampler;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

export function getInternals(model: LlamaModel, context: LlamaContext): LlamaInternals {
  const modelFields: unknown = model;
  const contextFields: unknown = context;
  if (!isRecord(modelFields) || !isRecord(contextFields)) throw new Error("node-llama-cpp objects are not objects");
  const nativeModel = modelFields["_model"];
  const llama = modelFields["_llama"];
  const nativeContext = contextFields["_ctx"];
  const bindings = isRecord(llama) ? llama["_bindings"] : undefined;
  const samplerClass = isRecord(bindings) ? bindings["AddonSampler"] : undefined;
  const methods = ["initBatch", "addToBatch", "decodeBatch", "sampleToken", "removeTokenCellsFromSequence"];
  if (
    nativeModel == null ||
    typeof samplerClass !== "function" ||
    !isRecord(nativeContext) ||
    methods.some((name) => typeof nativeContext[name] !== "function")
  ) {
    throw new Error("node-llama-cpp internals differ from version 3.21.1, which pagoda is pinned to");
  }
  const Sampler = samplerClass as NativeSamplerConstructor;
  return {
    context: nativeContext as unknown as NativeContext,
    createSampler: () => new Sampler(nativeModel),
  };
}
