/**
 * A synthetic model's shape with the defaults filled in, checked against what llama.cpp loads and what the writer
 * can encode. Some defaults depend on the architecture (bert has no grouped-query attention and pools by mean).
 */
import { ENCODABLE_TYPES } from "./gguf-writer.ts";
import { QUANT_BLOCK_SIZE } from "./quantize.ts";
import { SYNTHETIC_CHAT_TEMPLATES, syntheticChatTemplate } from "./synthetic-chat-templates.ts";
import type {
  SyntheticArchitecture,
  SyntheticLlamaShape,
  SyntheticModelOptions,
  SyntheticModelShape,
  SyntheticPooling,
} from "./synthetic-model.ts";
import { MIN_SYNTHETIC_VOCAB_SIZE } from "./synthetic-vocabulary.ts";
import { MIN_WORDPIECE_VOCAB_SIZE } from "./synthetic-wordpiece-vocabulary.ts";

/** A model of a few MB that loads and generates quickly on a CPU. */
export const DEFAULT_SYNTHETIC_SHAPE: Readonly<SyntheticLlamaShape> = Object.freeze({
  vocabSize: 2048,
  embeddingLength: 128,
  blockCount: 4,
  headCount: 4,
  headCountKv: 2,
  feedForwardLength: 384,
  contextLength: 2048,
  tensorType: "F16",
});

type ArchitectureDependent = "headLength" | "pooling" | "tokenTypeCount" | "rmsNormEpsilon";

/** Defaults that hold whatever the architecture. */
const FIXED_DEFAULTS: Readonly<Omit<SyntheticModelShape, ArchitectureDependent>> = Object.freeze({
  ...DEFAULT_SYNTHETIC_SHAPE,
  architecture: "llama",
  expertCount: 0,
  expertUsedCount: 0,
  ropeFreqBase: 10000,
  tiedEmbeddings: false,
  chatTemplate: "chatml",
  classifierLabels: [],
});

export const SYNTHETIC_ARCHITECTURES: readonly SyntheticArchitecture[] = ["llama", "qwen2", "qwen3", "bert"];
const POOLINGS: readonly SyntheticPooling[] = ["none", "mean", "cls", "last", "rank"];

/** Copies the options that are set over `defaults`, key by key, so unknown keys (a table row's name) are left out. */
function withOptions<T extends object>(defaults: T, options: SyntheticModelOptions): T {
  const shape = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof T)[]) {
    const value = (options as Partial<T>)[key];
    if (value !== undefined) shape[key] = value as T[keyof T];
  }
  return shape;
}

function checkPositiveIntegers(shape: SyntheticModelShape): void {
  const positive = [
    "vocabSize",
    "embeddingLength",
    "blockCount",
    "headCount",
    "headCountKv",
    "feedForwardLength",
    "contextLength",
  ] as const;
  for (const key of positive)
    if (!Number.isSafeInteger(shape[key]) || shape[key] < 1)
      throw new RangeError(`${key} must be a positive integer, got ${shape[key]}`);
}

function checkExperts(shape: SyntheticModelShape): void {
  if (!Number.isSafeInteger(shape.expertCount) || shape.expertCount < 0)
    throw new RangeError(`expertCount must be a non-negative integer, got ${shape.expertCount}`);
  const [minUsed, maxUsed] = shape.expertCount === 0 ? [0, 0] : [1, shape.expertCount];
  if (
    !Number.isSafeInteger(shape.expertUsedCount) ||
    shape.expertUsedCount < minUsed ||
    shape.expertUsedCount > maxUsed
  )
    throw new RangeError(`expertUsedCount must be between ${minUsed} and ${maxUsed}, got ${shape.expertUsedCount}`);
  if (shape.expertCount > 0 && shape.architecture !== "llama")
    throw new RangeError("MoE models use the llama architecture (Mixtral's layout)");
}

function checkQuantizable(shape: SyntheticModelShape): void {
  if (shape.tensorType !== "Q8_0" && shape.tensorType !== "Q4_0") return;
  // Quantized blocks run along rows: embeddingLength long, feedForwardLength for ffn_down, the attention width for
  // attn_output.
  const rows = [shape.embeddingLength, shape.feedForwardLength, shape.headLength * shape.headCount];
  if (rows.some((length) => length % QUANT_BLOCK_SIZE !== 0))
    throw new RangeError(
      `${shape.tensorType} needs embeddingLength, feedForwardLength and headLength × headCount to be multiples of ` +
        `${QUANT_BLOCK_SIZE}`,
    );
}

/** What bert, the classification head and the pooling allow. */
function checkRetrieval(shape: SyntheticModelShape): void {
  const isBert = shape.architecture === "bert";
  if (!POOLINGS.includes(shape.pooling)) throw new RangeError(`unsupported pooling ${String(shape.pooling)}`);
  const labels = shape.classifierLabels;
  if (labels.length > 0 && shape.architecture !== "bert" && shape.architecture !== "qwen3")
    throw new RangeError("only bert and qwen3 models can carry a classification head");
  if (labels.some((label) => typeof label !== "string" || label === ""))
    throw new RangeError("classifierLabels must be non-empty strings");
  if ((shape.pooling === "rank") !== labels.length > 0)
    throw new RangeError('pooling "rank" goes with a classification head (classifierLabels), and only with one');
  if (isBert ? shape.tokenTypeCount < 1 : shape.tokenTypeCount !== 0)
    throw new RangeError(
      isBert ? "bert needs at least one token type" : "only bert has token type embeddings (tokenTypeCount)",
    );
  if (!Number.isSafeInteger(shape.tokenTypeCount))
    throw new RangeError(`tokenTypeCount must be an integer, got ${shape.tokenTypeCount}`);
  if (!isBert) return;
  if (shape.headCountKv !== shape.headCount)
    throw new RangeError("bert has no grouped-query attention: headCountKv must equal headCount");
  if (shape.tiedEmbeddings) throw new RangeError("bert has no output projection to tie to token_embd");
  if (shape.chatTemplate !== FIXED_DEFAULTS.chatTemplate) throw new RangeError("bert models carry no chat template");
}

/** The shape of `options` with every default filled in; throws a RangeError for a shape that cannot be written. */
export function resolveSyntheticShape(options: SyntheticModelOptions): SyntheticModelShape {
  const fixed = withOptions(FIXED_DEFAULTS, options);
  const isBert = fixed.architecture === "bert";
  const hasHead = (options.classifierLabels ?? []).length > 0;
  const shape: SyntheticModelShape = withOptions(
    {
      ...fixed,
      classifierLabels: [...fixed.classifierLabels],
      headCountKv: isBert && options.headCountKv === undefined ? fixed.headCount : fixed.headCountKv,
      headLength: fixed.embeddingLength / fixed.headCount,
      pooling: hasHead ? "rank" : isBert ? "mean" : "none",
      rmsNormEpsilon: isBert ? 1e-12 : 1e-5,
      tokenTypeCount: isBert ? 2 : 0,
    },
    options,
  );
  checkPositiveIntegers(shape);
  if (options.headLength === undefined && shape.embeddingLength % shape.headCount !== 0)
    throw new RangeError("embeddingLength must be divisible by headCount");
  if (!Number.isSafeInteger(shape.headLength) || shape.headLength < 1)
    throw new RangeError(`headLength must be a positive integer, got ${shape.headLength}`);
  if (!SYNTHETIC_ARCHITECTURES.includes(shape.architecture))
    throw new RangeError(`unsupported architecture ${String(shape.architecture)}`);
  if (!SYNTHETIC_CHAT_TEMPLATES.includes(shape.chatTemplate))
    throw new RangeError(`unsupported chatTemplate ${String(shape.chatTemplate)}`);
  const minVocabSize = isBert
    ? MIN_WORDPIECE_VOCAB_SIZE
    : MIN_SYNTHETIC_VOCAB_SIZE + syntheticChatTemplate(shape.chatTemplate).userDefinedTokens.length;
  if (shape.vocabSize < minVocabSize) throw new RangeError(`vocabSize must be at least ${minVocabSize}`);
  if (shape.architecture !== "qwen3" && shape.headLength * shape.headCount !== shape.embeddingLength)
    throw new RangeError("only qwen3 models may have headLength × headCount differ from embeddingLength");
  if (shape.headCount % shape.headCountKv !== 0) throw new RangeError("headCountKv must divide headCount");
  if (!ENCODABLE_TYPES.includes(shape.tensorType))
    throw new RangeError(`unsupported tensorType ${String(shape.tensorType)}`);
  checkQuantizable(shape);
  checkExperts(shape);
  checkRetrieval(shape);
  for (const key of ["ropeFreqBase", "rmsNormEpsilon"] as const)
    if (!Number.isFinite(shape[key]) || shape[key] <= 0)
      throw new RangeError(`${key} must be a positive number, got ${shape[key]}`);
  return shape;
}
