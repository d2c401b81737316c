import { type EncodableTypeName, type GgufSpec, GgufWriter } from "./gguf-writer.ts";
import { bertMetadata, bertTensors } from "./synthetic-bert.ts";
import type { SyntheticChatTemplate } from "./synthetic-chat-templates.ts";
import { decoderMetadata } from "./synthetic-metadata.ts";
import { DEFAULT_SYNTHETIC_SHAPE, resolveSyntheticShape } from "./synthetic-shape.ts";
import { syntheticTensors } from "./synthetic-tensors.ts";

export { LLAMA_FILE_TYPE } from "./synthetic-metadata.ts";
export { DEFAULT_SYNTHETIC_SHAPE, SYNTHETIC_ARCHITECTURES } from "./synthetic-shape.ts";

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

/**
 * `general.architecture`. llama and qwen2 are decoders; qwen3 is Qwen3's decoder (q/k norms, no q/k/v biases), which
 * with a classification head is a Qwen3-style reranker; bert is an encoder for embeddings, or with a head a
 * cross-encoder reranker.
 */
export type SyntheticArchitecture = "llama" | "qwen2" | "qwen3" | "bert";
/** A synthetic model can be of any type the writer encodes. */
export type SyntheticTensorType = EncodableTypeName;
/** `<arch>.pooling_type`, as llama.cpp names its pooling types; "none" writes no key. */
export type SyntheticPooling = "none" | "mean" | "cls" | "last" | "rank";

/** Everything that decides a synthetic model's tensors and metadata. */
export interface SyntheticModelShape extends Omit<SyntheticLlamaShape, "tensorType"> {
  /** `general.architecture`; "qwen2" adds q/k/v projection biases; only "llama" can be MoE. Defaults to "llama". */
  architecture: SyntheticArchitecture;
  /** Experts per layer of a Mixtral-style MoE model; 0 means a dense FFN. Defaults to 0. */
  expertCount: number;
  /** Experts each token is routed to; 0 exactly when `expertCount` is 0. Defaults to 0. */
  expertUsedCount: number;
  /** RoPE base frequency; bert has no RoPE and ignores it. Defaults to 10000. */
  ropeFreqBase: number;
  /** Norm epsilon: of the RMS norms in a decoder, of the layer norms in bert. Defaults to 1e-5, 1e-12 for bert. */
  rmsNormEpsilon: number;
  /** The output projection reuses token_embd, so there is no output.weight; bert has no output. Defaults to false. */
  tiedEmbeddings: boolean;
  /**
   * The file type. Norms, biases and the MoE router are always F32, as converters write them; Q4_0 files keep
   * some tensors at Q8_0 (see the policy below). Defaults to "F16".
   */
  tensorType: SyntheticTensorType;
  /**
   * `tokenizer.chat_template`: plain ChatML, or ChatML with tool calling in Qwen2.5/Hermes style (`<tool_call>`
   * blocks; adds `<tool_call>` and `</tool_call>` to the vocabulary) or Llama 3.1 style (bare JSON calls). bert
   * carries no chat template, so only the default is accepted there. Defaults to "chatml".
   */
  chatTemplate: SyntheticChatTemplate;
  /**
   * Size of one attention head. Only qwen3 may set it apart from `embeddingLength / headCount`, as Qwen3 does
   * (Qwen3-0.6B: 16 heads of 128 on 1024 dims). Defaults to `embeddingLength / headCount`.
   */
  headLength: number;
  /**
   * How an embedding context pools token vectors (`<arch>.pooling_type`). Defaults to "rank" with a classification
   * head, else "mean" for bert and "none" for the decoders.
   */
  pooling: SyntheticPooling;
  /**
   * Labels of a classification head, one per output (`<arch>.classifier.output_labels`); empty for none. Only bert
   * (a dense+tanh layer, then the output projection) and qwen3 (the output projection alone, a rerank template
   * added) carry one; llama.cpp rejects the extra tensors in llama and qwen2 files. Defaults to none.
   */
  classifierLabels: readonly string[];
  /**
   * Rows of bert's token type (segment) embeddings: 2 for BERT, 1 for XLM-RoBERTa; the decoders have none. Defaults to
   * 2 for bert, 0 otherwise.
   */
  tokenTypeCount: number;
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

/** What follows "pagoda-synthetic-" in `general.name` by default: the shape spelled out, then the file type. */
export function syntheticModelLabel(shape: SyntheticModelShape, fileTypeName: string = shape.tensorType): string {
  const headLength = shape.headLength * shape.headCount === shape.embeddingLength ? "" : `-hd${shape.headLength}`;
  const head = shape.classifierLabels.length === 0 ? "" : `${shape.classifierLabels.length}`;
  return (
    `v${shape.vocabSize}-d${shape.embeddingLength}-l${shape.blockCount}` +
    `-h${shape.headCount}-kv${shape.headCountKv}${headLength}-ff${shape.feedForwardLength}` +
    (shape.architecture === "llama" ? "" : `-${shape.architecture}`) +
    (shape.expertCount === 0 ? "" : `-moe${shape.expertCount}x${shape.expertUsedCount}`) +
    (shape.tiedEmbeddings ? "-tied" : "") +
    (shape.pooling === "none" ? "" : `-${shape.pooling}${head}`) +
    (shape.chatTemplate === "chatml" ? "" : `-${shape.chatTemplate}`) +
    `-${fileTypeName.toLowerCase()}`
  );
}

/**
 * The shape with defaults filled in, and the GGUF spec of its model. Tensor values are generated only when the
 * spec is written, a chunk at a time, so building the spec of even a 100 GB model is cheap.
 */
export function syntheticModelSpec(options: SyntheticModelOptions = {}): {
  shape: SyntheticModelShape;
  spec: GgufSpec;
} {
  const shape = resolveSyntheticShape(options);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const label = options.label ?? syntheticModelLabel(shape);
  const spec =
    shape.architecture === "bert"
      ? { metadata: bertMetadata(shape, seed, label), tensors: bertTensors(shape, seed) }
      : { metadata: decoderMetadata(shape, seed, label), tensors: syntheticTensors(shape, seed) };
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
 * Writes a GGUF with random weights and a synthetic vocabulary (byte-fallback SentencePiece; WordPiece for bert),
 * streaming tensor by tensor so memory stays at a few MB beyond the vocabulary whatever the model size. `onProgress`
 * gets the bytes written so far.
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
