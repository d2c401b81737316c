import { ggmlTensorBytes, ggmlTypeInfo } from "../gguf/ggml-types.ts";
import type { GgufKv } from "../gguf/gguf-kv.ts";
import { type GgufHeader, readGgufHeader } from "../gguf/gguf-reader.ts";

/** One tensor as the planner needs it: no data, only what it costs. */
export interface GgufTensorSummary {
  readonly name: string;
  readonly dims: readonly number[];
  readonly ggmlType: number;
  readonly typeName: string;
  readonly numElements: number;
  readonly bytes: number;
}

/** Attention and feed-forward shape of one transformer block. */
export interface GgufLayerInfo {
  readonly numHeads: number;
  /** 0 for a layer without attention (recurrent layers of hybrid models): it has no KV cache. */
  readonly numHeadsKv: number;
  /** Per-head key size (`n_embd_head_k`). */
  readonly keyLength: number;
  /** Per-head value size (`n_embd_head_v`). */
  readonly valueLength: number;
  readonly feedForwardLength: number;
  /** Attends only to the last `slidingWindow` tokens, so its KV cache is bounded by the window. */
  readonly isSlidingWindow: boolean;
}

/** The hyperparameters llama.cpp derives from a GGUF header, plus the tensor list. */
export interface GgufModelInfo {
  readonly architecture: string;
  readonly name: string | null;
  /** Training context (`<arch>.context_length`); null when the file does not say. */
  readonly contextLength: number | null;
  readonly numLayers: number;
  readonly embeddingLength: number;
  readonly vocabSize: number;
  readonly layers: readonly GgufLayerInfo[];
  /** 0 for dense models. */
  readonly numExperts: number;
  readonly numExpertsUsed: number;
  /** Window of sliding-window layers in tokens; null when no layer uses one. */
  readonly slidingWindow: number | null;
  readonly tensors: readonly GgufTensorSummary[];
}

// Architectures whose llama.cpp loader assumes a sliding-window period when the file gives none
// (`set_swa_pattern` defaults in llama.cpp's model loaders): every `period`-th layer uses full attention.
const DEFAULT_SWA_PERIOD: Readonly<Record<string, number>> = {
  gemma2: 2,
  gemma3: 6,
  gemma3n: 5,
  "gemma-embedding": 6,
  cohere2: 4,
  exaone4: 4,
  "exaone-moe": 4,
  llama4: 4,
  "gpt-oss": 2,
  olmo2: 4,
  plamo3: 8,
  smallthinker: 4,
  afmoe: 4,
};

type MetadataValue = GgufKv["value"];

class Metadata {
  private readonly byKey: Map<string, MetadataValue>;

  constructor(
    metadata: readonly GgufKv[],
    private readonly architecture: string,
  ) {
    this.byKey = new Map(metadata.map((kv) => [kv.key, kv.value]));
  }

  raw(key: string): MetadataValue | undefined {
    return this.byKey.get(key.replace("%s", this.architecture));
  }

  number(key: string): number | null {
    const value = this.raw(key);
    if (typeof value === "number" || typeof value === "bigint") return Number(value);
    return null;
  }

  /** A key llama.cpp reads with `get_key_or_arr`: one value for every layer, or one per layer. */
  perLayer(key: string, numLayers: number): number[] | null {
    const value = this.raw(key);
    if (typeof value === "number" || typeof value === "bigint") return new Array<number>(numLayers).fill(Number(value));
    if (value != null && typeof value === "object" && "length" in value) {
      const items = Array.from(value as ArrayLike<unknown>, (item) => Number(item));
      if (items.length < numLayers)
        throw new RangeError(
          `${key.replace("%s", this.architecture)} has ${items.length} entries for ${numLayers} layers`,
        );
      return items.slice(0, numLayers);
    }
    return null;
  }
}

function summarizeTensors(header: GgufHeader): GgufTensorSummary[] {
  return header.tensors.map((tensor) => {
    const type = ggmlTypeInfo(tensor.ggmlType);
    return {
      name: tensor.name,
      dims: tensor.dims,
      ggmlType: tensor.ggmlType,
      typeName: type.name,
      numElements: tensor.dims.reduce((product, dim) => product * dim, 1),
      bytes: ggmlTensorBytes(type, tensor.dims),
    };
  });
}

function slidingWindowLayers(
  meta: Metadata,
  architecture: string,
  numLayers: number,
  window: number | null,
): boolean[] {
  const none = new Array<boolean>(numLayers).fill(false);
  if (window === null || window <= 0) return none;
  const pattern = meta.raw("%s.attention.sliding_window_pattern");
  if (pattern != null && typeof pattern === "object" && "length" in pattern)
    return Array.from(pattern as ArrayLike<unknown>, (item) => Boolean(item)).slice(0, numLayers);
  const period = typeof pattern === "number" ? pattern : DEFAULT_SWA_PERIOD[architecture];
  if (period === undefined) return none;
  // Period 0 means every layer slides (llama.cpp's `set_swa_pattern(0)`).
  return none.map((_, layer) => period === 0 || layer % period < period - 1);
}

/** Turns a parsed GGUF header into the shape the memory planner works from. */
export function ggufModelInfoFromHeader(header: GgufHeader): GgufModelInfo {
  const architectureValue = header.metadata.find((kv) => kv.key === "general.architecture")?.value;
  if (typeof architectureValue !== "string") throw new Error("GGUF file has no general.architecture");
  const architecture = architectureValue;
  const meta = new Metadata(header.metadata, architecture);
  const tensors = summarizeTensors(header);

  const numLayers = meta.number("%s.block_count");
  const embeddingLength = meta.number("%s.embedding_length");
  if (numLayers === null || embeddingLength === null)
    throw new Error(`GGUF file lacks ${architecture}.block_count or ${architecture}.embedding_length`);

  const heads = meta.perLayer("%s.attention.head_count", numLayers) ?? new Array<number>(numLayers).fill(0);
  const headsKv = meta.perLayer("%s.attention.head_count_kv", numLayers) ?? heads;
  const feedForward = meta.perLayer("%s.feed_forward_length", numLayers) ?? new Array<number>(numLayers).fill(0);
  const firstHeads = heads[0] ?? 0;
  const defaultHeadSize = firstHeads > 0 ? Math.floor(embeddingLength / firstHeads) : 0;
  const keyLength = meta.number("%s.attention.key_length") ?? defaultHeadSize;
  const valueLength = meta.number("%s.attention.value_length") ?? defaultHeadSize;
  const keyLengthSwa = meta.number("%s.attention.key_length_swa") ?? keyLength;
  const valueLengthSwa = meta.number("%s.attention.value_length_swa") ?? valueLength;

  const window = meta.number("%s.attention.sliding_window");
  const isSwa = slidingWindowLayers(meta, architecture, numLayers, window);
  const layers: GgufLayerInfo[] = heads.map((numHeads, layer) => ({
    numHeads,
    numHeadsKv: headsKv[layer]!,
    keyLength: isSwa[layer] ? keyLengthSwa : keyLength,
    valueLength: isSwa[layer] ? valueLengthSwa : valueLength,
    feedForwardLength: feedForward[layer]!,
    isSlidingWindow: isSwa[layer] ?? false,
  }));

  const tokens = meta.raw("tokenizer.ggml.tokens");
  const tokenCount = tokens != null && typeof tokens === "object" && "length" in tokens ? tokens.length : null;
  const output = tensors.find((tensor) => tensor.name === "output.weight" || tensor.name === "token_embd.weight");
  const vocabSize = tokenCount ?? meta.number("%s.vocab_size") ?? output?.dims[1] ?? 0;

  const nameValue = meta.raw("general.name");
  return {
    architecture,
    name: typeof nameValue === "string" ? nameValue : null,
    contextLength: meta.number("%s.context_length"),
    numLayers,
    embeddingLength,
    vocabSize,
    layers,
    numExperts: meta.number("%s.expert_count") ?? 0,
    numExpertsUsed: meta.number("%s.expert_used_count") ?? 0,
    slidingWindow: isSwa.some(Boolean) ? window : null,
    tensors,
  };
}

/** Reads only the header of the GGUF file at `path` (never the weights) and summarizes it. */
export async function readGgufModelInfo(path: string): Promise<GgufModelInfo> {
  return ggufModelInfoFromHeader(await readGgufHeader(path));
}
