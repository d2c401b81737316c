/**
 * Loads a model and creates the one native context a `LlamaEngine` drives. The context is created through the
 * addon directly (`llama-internals.ts`), because the library's `LlamaContext` hard-codes one KV slab per sequence.
 */
import type { Llama, LlamaModel } from "node-llama-cpp";
import { combinedFailure } from "./combined-failure.ts";
import type { ModelInfo } from "./engine.ts";
import {
  type LlamaEngineOptions,
  type ResolvedLlamaEngineOptions,
  resolveLlamaEngineOptions,
} from "./llama-engine-options.ts";
import { getInternals, isPatchedContext, type LlamaInternals, type NativeContext } from "./llama-internals.ts";
import { loadLlama, setNativeLogSink } from "./llama-loader.ts";
import { fromToken } from "./llama-tokenizer.ts";

export interface OpenedLlamaContext {
  readonly llama: Llama;
  readonly model: LlamaModel;
  readonly internals: LlamaInternals;
  /** Initialised; dispose it before the model. */
  readonly native: NativeContext;
  readonly options: ResolvedLlamaEngineOptions;
}

/** The model and its initialised context; nothing stays loaded when this rejects. */
export async function openLlamaContext(options: LlamaEngineOptions): Promise<OpenedLlamaContext> {
  const llama = await loadLlama(options.gpu);
  setNativeLogSink(options.onNativeLog);
  const model = await llama.loadModel({
    modelPath: options.modelPath,
    ...(options.onLoadProgress === undefined ? {} : { onLoadProgress: options.onLoadProgress }),
  });
  try {
    const internals = getInternals(model);
    const resolved = resolveLlamaEngineOptions(options, llama.gpu !== false, internals.isPatched);
    const isShared = resolved.kvLayout === "shared";
    const native = internals.createContext({
      contextSize: resolved.kvCacheTokens,
      batchSize: resolved.batchSize,
      sequences: resolved.numSequences,
      threads: resolved.threads,
      flashAttention: resolved.flashAttention,
      kvUnified: isShared,
    });
    const failure = !(await native.init())
      ? "llama.cpp could not create the context"
      : isShared && !(isPatchedContext(native) && native.isKvUnified())
        ? "the context was not created with a shared KV pool"
        : null;
    if (failure !== null) await throwAfter(new Error(failure), () => native.dispose());
    return { llama, model, internals, native, options: resolved };
  } catch (error) {
    return throwAfter(error, () => model.dispose());
  }
}

/** Throws `failure` once `cleanup` is done; a failed cleanup joins it instead of hiding why opening failed. */
async function throwAfter(failure: unknown, cleanup: () => Promise<void>): Promise<never> {
  const failures = [failure];
  try {
    await cleanup();
  } catch (error) {
    failures.push(error);
  }
  throw combinedFailure(failures);
}

/** What the engine seam reports about the model and the context it got. */
export function modelInfoOf(
  model: LlamaModel,
  options: ResolvedLlamaEngineOptions,
  isPatched: boolean,
): Omit<ModelInfo, "toolSyntax" | "pooling" | "rankOutput"> {
  return {
    name: model.fileInfo.metadata.general?.name ?? "model",
    vocabSize: vocabSizeOf(model),
    contextSize: options.contextSize,
    numSequences: options.numSequences,
    kvCacheTokens: options.kvCacheTokens,
    isKvShared: options.kvLayout === "shared",
    canCopyCells: options.kvLayout === "slabs" && isPatched,
    batchSize: options.batchSize,
    trainContextSize: model.trainContextSize,
    embeddingSize: model.embeddingVectorSize,
    bosToken: model.tokens.bos === null ? null : fromToken(model.tokens.bos),
    isFlashAttention: options.flashAttention,
  };
}

/** Tokens of the model's vocabulary, from the GGUF's token list. */
export function vocabSizeOf(model: LlamaModel): number {
  const tokens = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
  return Array.isArray(tokens) ? tokens.length : 0;
}
