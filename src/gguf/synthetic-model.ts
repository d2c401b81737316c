import type { GgufKv } from "./gguf-kv.ts";
import { ENCODABLE_TYPES, type EncodableTypeName, type GgufSpec, GgufWriter } from "./gguf-writer.ts";
import { QUANT_BLOCK_SIZE } from "./quantize.ts";
import {
  SYNTHETIC_CHAT_TEMPLATES,
  type SyntheticChatTemplate,
  syntheticChatTemplate,
} from "./synthetic-chat-templates.ts";
import { syntheticTensors } from "./synthetic-tensors.ts";
import { buildSyntheticVocabulary, MIN_SYNTHETIC_VOCAB_SIZE } from "./synthetic-vocabulary.ts";

/** Shape and encoding of a synthetic llama model. */
export interface SyntheticLlamaShape {
  /** Total tokens including special, byte and chat-marker tokens. At least 262. Defaults to 2048. */
  vocabSize: number;
  /** Hidden size (n_embd). Must be divisible by `headCount`. Defaults to 128. */
  embeddingLength: number;
  /** Number of transformer blocks. Defaults to 4. */
  blockCount: number;
  /** Attention heads. Defaults to 4. */
  headCount: number;
  /** Key/value heads (grouped-query attention); must divide `headCount`. Defaults to 2. */
  headCountKv: number;
  /** FFN hidden size (per expert in an MoE model). Defaults to 384. */
  feedForwardLength: number;
  /** Training context length reported in the metadata. Defaults to 2048. */
  contextLength: number;
  /** Encoding of the weight matrices; norm weights are always F32. Defaults to "F16". */
  tensorType: "F32" | "F16";
}

export interface SyntheticLlamaOptions extends Partial<SyntheticLlamaShape> {
  /** PRNG seed for the weights (low 32 bits are used); the same options always produce a byte-identical file. Defaults to 0. */
  seed?: number;
}

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

export type SyntheticArchitecture = "llama" | "qwen2";
/** A synthetic model can be of any type the writer encodes. */
export type SyntheticTensorType = EncodableTypeName;

/** Everything that decides a synthetic model's tensors and metadata. */
export interface SyntheticModelShape extends Omit<SyntheticLlamaShape, "tensorType"> {
  /** `general.architecture`; "qwen2" adds q/k/v projection biases and cannot be MoE. Defaults to "llama". */
  architecture: SyntheticArchitecture;
  /** Experts per layer of a Mixtral-style MoE model; 0 means a dense FFN. Defaults to 0. */
  expertCount: number;
  /** Experts each token is routed to; 0 exactly when `expertCount` is 0. Defaults to 0. */
  expertUsedCount: number;
  /** RoPE base frequency. Defaults to 10000. */
  ropeFreqBase: number;
  /** RMS norm epsilon. Defaults to 1e-5. */
  rmsNormEpsilon: number;
  /** The output projection reuses token_embd, so there is no output.weight. Defaults to false. */
  tiedEmbeddings: boolean;
  /**
   * The file type. Norms, biases and the MoE router are always F32, as converters write them; Q4_0 files keep
   * some tensors at Q8_0 (see the policy below). Defaults to "F16".
   */
  tensorType: SyntheticTensorType;
  /**
   * `tokenizer.chat_template`: plain ChatML, or ChatML with tool calling in Qwen2.5/Hermes style (`<tool_call>`
   * blocks; adds `<tool_call>` and `</tool_call>` to the vocabulary) or Llama 3.1 style (bare JSON calls).
   * Defaults to "chatml".
   */
  chatTemplate: SyntheticChatTemplate;
}

export interface SyntheticModelOptions extends Partial<SyntheticModelShape> {
  /** PRNG seed for the weights (low 32 bits are used). Defaults to 0. */
  seed?: number;
  /** What follows "pagoda-synthetic-" in `general.name`. Defaults to a label spelling out the shape. */
  label?: string;
}

/** One tensor as it will be written. */
export interface SyntheticTensorPlan {
  name: string;
  dims: readonly number[];
  type: EncodableTypeName;
  byteLength: number;
}

export interface SyntheticModelPlan {
  shape: SyntheticModelShape;
  tensors: SyntheticTensorPlan[];
  /** All tensor elements, as llama.cpp counts a model's parameters. */
  parameterCount: number;
  /** Parameters a token passes through: everything except the experts it is not routed to. */
  activeParameterCount: number;
  /** Exact size of the file, header and padding included. */
  fileBytes: number;
}

/** llama.cpp's `general.file_type` ids (LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q4_0, MOSTLY_Q8_0). */
export const LLAMA_FILE_TYPE: Readonly<Record<SyntheticTensorType, number>> = Object.freeze({
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 7,
});

const MODEL_DEFAULTS: Readonly<SyntheticModelShape> = Object.freeze({
  ...DEFAULT_SYNTHETIC_SHAPE,
  architecture: "llama",
  expertCount: 0,
  expertUsedCount: 0,
  ropeFreqBase: 10000,
  rmsNormEpsilon: 1e-5,
  tiedEmbeddings: false,
  chatTemplate: "chatml",
});

function resolveShape(options: SyntheticModelOptions): SyntheticModelShape {
  const shape = { ...MODEL_DEFAULTS };
  for (const key of Object.keys(MODEL_DEFAULTS) as (keyof SyntheticModelShape)[])
    if (options[key] !== undefined) (shape as Record<keyof SyntheticModelShape, unknown>)[key] = options[key];
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
  if (!SYNTHETIC_CHAT_TEMPLATES.includes(shape.chatTemplate))
    throw new RangeError(`unsupported chatTemplate ${String(shape.chatTemplate)}`);
  const minVocabSize = MIN_SYNTHETIC_VOCAB_SIZE + syntheticChatTemplate(shape.chatTemplate).userDefinedTokens.length;
  if (shape.vocabSize < minVocabSize) throw new RangeError(`vocabSize must be at least ${minVocabSize}`);
  if (shape.embeddingLength % shape.headCount !== 0)
    throw new RangeError("embeddingLength must be divisible by headCount");
  if (shape.headCount % shape.headCountKv !== 0) throw new RangeError("headCountKv must divide headCount");
  if (!ENCODABLE_TYPES.includes(shape.tensorType))
    throw new RangeError(`unsupported tensorType ${String(shape.tensorType)}`);
  if (shape.tensorType === "Q8_0" || shape.tensorType === "Q4_0") {
    // Quantized blocks run along rows; rows are embeddingLength long, or feedForwardLength for ffn_down.
    if (shape.embeddingLength % QUANT_BLOCK_SIZE !== 0 || shape.feedForwardLength % QUANT_BLOCK_SIZE !== 0)
      throw new RangeError(
        `${shape.tensorType} needs embeddingLength and feedForwardLength to be multiples of ${QUANT_BLOCK_SIZE}`,
      );
  }
  if (shape.architecture !== "llama" && shape.architecture !== "qwen2")
    throw new RangeError(`unsupported architecture ${String(shape.architecture)}`);
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
  for (const key of ["ropeFreqBase", "rmsNormEpsilon"] as const)
    if (!Number.isFinite(shape[key]) || shape[key] <= 0)
      throw new RangeError(`${key} must be a positive number, got ${shape[key]}`);
  return shape;
}

/** What follows "pagoda-synthetic-" in `general.name` by default: the shape spelled out, then the file type. */
export function syntheticModelLabel(shape: SyntheticModelShape, fileTypeName: string = shape.tensorType): string {
  return (
    `v${shape.vocabSize}-d${shape.embeddingLength}-l${shape.blockCount}` +
    `-h${shape.headCount}-kv${shape.headCountKv}-ff${shape.feedForwardLength}` +
    (shape.architecture === "llama" ? "" : `-${shape.architecture}`) +
    (shape.expertCount === 0 ? "" : `-moe${shape.expertCount}x${shape.expertUsedCount}`) +
    (shape.tiedEmbeddings ? "-tied" : "") +
    (shape.chatTemplate === "chatml" ? "" : `-${shape.chatTemplate}`) +
    `-${fileTypeName.toLowerCase()}`
  );
}

function buildMetadata(shape: SyntheticModelShape, seed: number, label: string): GgufKv[] {
  const chatTemplate = syntheticChatTemplate(shape.chatTemplate);
  const vocabulary = buildSyntheticVocabulary(shape.vocabSize, chatTemplate.userDefinedTokens);
  const imEnd = vocabulary.tokens.indexOf("<|im_end|>");
  const arch = shape.architecture;
  const experts: GgufKv[] =
    shape.expertCount === 0
      ? []
      : [
          { key: `${arch}.expert_count`, type: "uint32", value: shape.expertCount },
          { key: `${arch}.expert_used_count`, type: "uint32", value: shape.expertUsedCount },
        ];
  return [
    { key: "general.architecture", type: "string", value: arch },
    { key: "general.name", type: "string", value: `pagoda-synthetic-${label}` },
    {
      key: "general.description",
      type: "string",
      value:
        `Synthetic test model: all weights are random (seed ${seed}), so its output is meaningless. ` +
        "It exists only to exercise loading, tokenization and generation.",
    },
    { key: "general.file_type", type: "uint32", value: LLAMA_FILE_TYPE[shape.tensorType] },
    { key: `${arch}.vocab_size`, type: "uint32", value: shape.vocabSize },
    { key: `${arch}.context_length`, type: "uint32", value: shape.contextLength },
    { key: `${arch}.embedding_length`, type: "uint32", value: shape.embeddingLength },
    { key: `${arch}.block_count`, type: "uint32", value: shape.blockCount },
    { key: `${arch}.feed_forward_length`, type: "uint32", value: shape.feedForwardLength },
    { key: `${arch}.attention.head_count`, type: "uint32", value: shape.headCount },
    { key: `${arch}.attention.head_count_kv`, type: "uint32", value: shape.headCountKv },
    ...experts,
    { key: `${arch}.rope.dimension_count`, type: "uint32", value: shape.embeddingLength / shape.headCount },
    { key: `${arch}.rope.freq_base`, type: "float32", value: shape.ropeFreqBase },
    { key: `${arch}.attention.layer_norm_rms_epsilon`, type: "float32", value: shape.rmsNormEpsilon },
    { key: "tokenizer.ggml.model", type: "string", value: "llama" },
    { key: "tokenizer.ggml.tokens", type: "array", itemType: "string", value: vocabulary.tokens },
    { key: "tokenizer.ggml.scores", type: "array", itemType: "float32", value: vocabulary.scores },
    { key: "tokenizer.ggml.token_type", type: "array", itemType: "int32", value: vocabulary.types },
    { key: "tokenizer.ggml.unknown_token_id", type: "uint32", value: 0 },
    { key: "tokenizer.ggml.bos_token_id", type: "uint32", value: 1 },
    { key: "tokenizer.ggml.eos_token_id", type: "uint32", value: 2 },
    { key: "tokenizer.ggml.eot_token_id", type: "uint32", value: imEnd },
    { key: "tokenizer.ggml.add_bos_token", type: "bool", value: true },
    { key: "tokenizer.ggml.add_eos_token", type: "bool", value: false },
    { key: "tokenizer.chat_template", type: "string", value: chatTemplate.text },
  ];
}

/**
 * The shape with defaults filled in, and the GGUF spec of its model. Tensor values are generated only when the
 * spec is written, a chunk at a time, so building the spec of even a 100 GB model is cheap.
 */
export function syntheticModelSpec(options: SyntheticModelOptions = {}): {
  shape: SyntheticModelShape;
  spec: GgufSpec;
} {
  const shape = resolveShape(options);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const spec = {
    metadata: buildMetadata(shape, seed, options.label ?? syntheticModelLabel(shape)),
    tensors: syntheticTensors(shape, seed),
  };
  return { shape, spec };
}

function planOf(shape: SyntheticModelShape, spec: GgufSpec, writer: GgufWriter): SyntheticModelPlan {
  const tensors = spec.tensors.map((tensor, index) => ({
    name: tensor.name,
    dims: tensor.dims,
    type: tensor.type,
    byteLength: writer.placements[index]!.byteLength,
  }));
  const parameterCount = tensors.reduce(
    (sum, tensor) => sum + tensor.dims.reduce((product, dim) => product * dim, 1),
    0,
  );
  const idleExperts = shape.expertCount - shape.expertUsedCount;
  const idleParameters = shape.blockCount * idleExperts * 3 * shape.embeddingLength * shape.feedForwardLength;
  return {
    shape,
    tensors,
    parameterCount,
    activeParameterCount: parameterCount - idleParameters,
    fileBytes: writer.totalSize,
  };
}

/** What {@link writeSyntheticModel} would write, without generating any weights. */
export function planSyntheticModel(options: SyntheticModelOptions = {}): SyntheticModelPlan {
  const { shape, spec } = syntheticModelSpec(options);
  return planOf(shape, spec, new GgufWriter(spec));
}

/**
 * Writes a GGUF with random weights and a byte-fallback SentencePiece vocabulary, streaming tensor by tensor so
 * memory stays at a few MB beyond the vocabulary whatever the model size. `onProgress` gets the bytes written so far.
 */
export async function writeSyntheticModel(
  path: string,
  options: SyntheticModelOptions = {},
  onProgress?: (writtenBytes: number) => void,
): Promise<SyntheticModelPlan> {
  const { shape, spec } = syntheticModelSpec(options);
  const writer = new GgufWriter(spec);
  await writer.writeFile(path, onProgress);
  return planOf(shape, spec, writer);
}

/**
 * Writes a llama-architecture GGUF with random weights and a byte-fallback SentencePiece vocabulary.
 * Resolves to the shape actually used (defaults filled in).
 */
export async function writeSyntheticLlama(
  path: string,
  options: SyntheticLlamaOptions = {},
): Promise<SyntheticLlamaShape> {
  const tensorType = options.tensorType ?? DEFAULT_SYNTHETIC_SHAPE.tensorType;
  if (tensorType !== "F32" && tensorType !== "F16")
    throw new RangeError(`unsupported tensorType ${String(tensorType)}`);
  const { shape } = await writeSyntheticModel(path, options);
  const { vocabSize, embeddingLength, blockCount, headCount, headCountKv, feedForwardLength, contextLength } = shape;
  return {
    vocabSize,
    embeddingLength,
    blockCount,
    headCount,
    headCountKv,
    feedForwardLength,
    contextLength,
    tensorType,
  };
}
