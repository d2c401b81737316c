import { ggmlTypeByName } from "../gguf/ggml-types.ts";
import { GraphSketch, type SketchTensor } from "./graph-allocator.ts";

const F32_BYTES = ggmlTypeByName("F32").bytesPerBlock;
const F16_BYTES = ggmlTypeByName("F16").bytesPerBlock;
const I32_BYTES = ggmlTypeByName("I32").bytesPerBlock;
const I64_BYTES = ggmlTypeByName("I64").bytesPerBlock;

/** Feed-forward block of one layer. */
export type FeedForwardShape =
  | { readonly kind: "dense"; readonly feedForwardLength: number }
  | {
      readonly kind: "moe";
      readonly feedForwardLength: number;
      readonly numExperts: number;
      readonly numExpertsUsed: number;
    }
  | { readonly kind: "none" };

export interface ComputeLayerShape {
  readonly numHeads: number;
  readonly numHeadsKv: number;
  readonly keyLength: number;
  readonly valueLength: number;
  readonly isSlidingWindow: boolean;
  readonly feedForward: FeedForwardShape;
}

/** Everything the worst-case graph's tensor sizes depend on. */
export interface ComputeGraphShape {
  readonly embeddingLength: number;
  /** Rows of the output projection (the logits width). */
  readonly numOutputRows: number;
  readonly layers: readonly ComputeLayerShape[];
  /** Tokens in the graph; a multiple of `numSequences`. */
  readonly numTokens: number;
  readonly numOutputs: number;
  /** KV streams: one per sequence, or one for a unified cache. */
  readonly numStreams: number;
  /** KV cells one stream exposes to full-attention and to sliding-window layers. */
  readonly kvCellsPerStream: number;
  readonly swaKvCellsPerStream: number;
  readonly flashAttention: boolean;
  /** The V cache is stored transposed without flash attention; its width is the widest layer's. */
  readonly transposedValueWidth: number;
  readonly isKeyCacheF32: boolean;
  readonly isValueCacheF32: boolean;
  /** Side of the Hadamard rotation llama.cpp applies around a quantized K (V) cache; 0 when it does not. */
  readonly keyRotationSize: number;
  readonly valueRotationSize: number;
}

interface CacheInputs {
  readonly keyIndices: SketchTensor;
  readonly valueIndices: SketchTensor;
  readonly mask: SketchTensor;
  readonly cells: number;
}

/** Builds the decoder graph of a llama-style transformer in llama.cpp's node order. */
class DecoderSketch {
  private readonly g = new GraphSketch();
  private readonly tokens: number;
  private readonly full: CacheInputs;
  private readonly swa: CacheInputs;
  private readonly positions: SketchTensor;
  private readonly keyRotation: SketchTensor | null;
  private readonly valueRotation: SketchTensor | null;

  constructor(private readonly shape: ComputeGraphShape) {
    const g = this.g;
    this.tokens = shape.numTokens;
    this.positions = g.input(this.tokens * I32_BYTES);
    this.full = this.cacheInputs(shape.kvCellsPerStream);
    this.swa = this.cacheInputs(shape.swaKvCellsPerStream);
    this.keyRotation = shape.keyRotationSize > 0 ? g.input(shape.keyRotationSize ** 2 * F32_BYTES) : null;
    this.valueRotation = shape.valueRotationSize > 0 ? g.input(shape.valueRotationSize ** 2 * F32_BYTES) : null;
  }

  private cacheInputs(cellsPerStream: number): CacheInputs {
    const { shape, g, tokens } = this;
    const valueRows = shape.flashAttention ? tokens : tokens * shape.transposedValueWidth;
    return {
      keyIndices: g.input(tokens * I64_BYTES),
      valueIndices: g.input(valueRows * I64_BYTES),
      // [n_kv, tokens per stream, 1, streams]: n_kv × tokens overall.
      mask: g.input(cellsPerStream * tokens * (shape.flashAttention ? F16_BYTES : F32_BYTES)),
      cells: cellsPerStream,
    };
  }

  /** `llama_mul_mat_hadamard`: reshape, multiply by the rotation, reshape back. */
  private rotate(tensor: SketchTensor, bytes: number, rotation: SketchTensor | null): SketchTensor {
    if (rotation === null) return tensor;
    return this.g.view(this.g.op(bytes, [rotation, this.g.view(tensor)]));
  }

  private attention(layer: ComputeLayerShape, normed: SketchTensor): SketchTensor {
    const { g, shape, tokens } = this;
    const cache = layer.isSlidingWindow ? this.swa : this.full;
    const qBytes = layer.numHeads * layer.keyLength * tokens * F32_BYTES;
    const kBytes = layer.numHeadsKv * layer.keyLength * tokens * F32_BYTES;
    const vBytes = layer.numHeadsKv * layer.valueLength * tokens * F32_BYTES;
    const outBytes = layer.numHeads * layer.valueLength * tokens * F32_BYTES;

    const q = g.op(qBytes, [g.external(), normed]);
    let qCur = this.rotate(g.op(qBytes, [g.view(q), this.positions], true), qBytes, this.keyRotation);
    const v = g.op(vBytes, [g.external(), normed]);
    const vCur = this.rotate(g.view(v), vBytes, this.valueRotation);
    const k = g.op(kBytes, [g.external(), normed]);
    const kCur = this.rotate(g.op(kBytes, [g.view(k), this.positions], true), kBytes, this.keyRotation);
    g.expand(qCur);
    g.expand(vCur);
    g.expand(kCur);

    const cacheK = g.external();
    const cacheV = g.external();
    g.expand(g.writeInto(cacheK, [g.view(kCur), cache.keyIndices]));
    let vRows = g.view(vCur);
    const vWidth = layer.numHeadsKv * layer.valueLength;
    if (!shape.flashAttention && vWidth < shape.transposedValueWidth)
      vRows = g.op(shape.transposedValueWidth * tokens * F32_BYTES, [vRows]);
    g.expand(g.writeInto(cacheV, [shape.flashAttention ? vRows : g.view(vRows), cache.valueIndices]));

    qCur = g.view(g.view(qCur));
    let kView = g.view(g.view(cacheK));
    let vView = g.view(g.view(cacheV));
    let out: SketchTensor;
    if (shape.flashAttention) {
      const cells = cache.cells * shape.numStreams;
      if (shape.isKeyCacheF32) kView = g.op(cells * layer.numHeadsKv * layer.keyLength * F16_BYTES, [kView]);
      if (shape.isValueCacheF32) vView = g.op(cells * layer.numHeadsKv * layer.valueLength * F16_BYTES, [vView]);
      out = g.view(g.op(outBytes, [qCur, kView, vView, cache.mask]));
    } else {
      const scoreBytes = cache.cells * tokens * layer.numHeads * F32_BYTES;
      const scores = g.op(scoreBytes, [kView, qCur]);
      const probs = g.op(scoreBytes, [scores, cache.mask], true);
      out = g.op(outBytes, [g.view(g.op(outBytes, [vView, probs]))]);
    }
    g.expand(out);
    out = this.rotate(out, outBytes, this.valueRotation);
    return g.op(this.shape.embeddingLength * tokens * F32_BYTES, [g.external(), out]);
  }

  private feedForward(layer: ComputeLayerShape, input: SketchTensor, numTokens: number): SketchTensor {
    const { g } = this;
    const ffn = layer.feedForward;
    const rowBytes = this.shape.embeddingLength * numTokens * F32_BYTES;
    if (ffn.kind === "none") return input;
    const normed = g.op(rowBytes, [g.op(rowBytes, [input], true), g.external()], true);
    let out: SketchTensor;
    if (ffn.kind === "dense") {
      const hiddenBytes = ffn.feedForwardLength * numTokens * F32_BYTES;
      const gate = g.op(hiddenBytes, [g.external(), normed]);
      const up = g.op(hiddenBytes, [g.external(), normed]);
      out = g.op(rowBytes, [g.external(), g.op(hiddenBytes, [gate, up])]);
    } else {
      out = this.experts(ffn, normed, numTokens);
    }
    return g.op(rowBytes, [out, input], true);
  }

  /** `build_moe_ffn` with softmax gating and normalized expert weights (the llama/Mixtral path). */
  private experts(
    ffn: Extract<FeedForwardShape, { kind: "moe" }>,
    normed: SketchTensor,
    numTokens: number,
  ): SketchTensor {
    const { g } = this;
    const used = ffn.numExpertsUsed;
    const routerBytes = ffn.numExperts * numTokens * F32_BYTES;
    const probs = g.op(routerBytes, [g.op(routerBytes, [g.external(), normed])], true);
    const selected = g.view(g.op(ffn.numExperts * numTokens * I32_BYTES, [probs]));
    const weights = g.view(g.op(used * numTokens * F32_BYTES, [g.view(probs), selected]));
    const sum = g.op(numTokens * F32_BYTES, [g.op(numTokens * F32_BYTES, [weights])], true);
    const normalized = g.view(g.op(used * numTokens * F32_BYTES, [weights, sum], true));
    g.expand(normalized);

    const hiddenBytes = ffn.feedForwardLength * used * numTokens * F32_BYTES;
    const rowsBytes = this.shape.embeddingLength * used * numTokens * F32_BYTES;
    const tokensView = g.view(normed);
    const up = g.op(hiddenBytes, [g.external(), tokensView, selected]);
    const gate = g.op(hiddenBytes, [g.external(), tokensView, selected]);
    const down = g.op(rowsBytes, [g.external(), g.op(hiddenBytes, [gate, up]), selected]);
    const weighted = g.op(rowsBytes, [down, normalized], true);
    g.expand(weighted);

    const rowBytes = this.shape.embeddingLength * numTokens * F32_BYTES;
    const perExpert = Array.from({ length: used }, () => g.view(weighted));
    for (const view of perExpert) g.expand(view);
    let sumOut = perExpert[0]!;
    for (const view of perExpert.slice(1)) {
      sumOut = g.op(rowBytes, [sumOut, view], true);
      g.expand(sumOut);
    }
    return used === 1 ? g.op(rowBytes, [sumOut]) : sumOut;
  }

  measure(): number {
    const { g, shape, tokens } = this;
    const rowBytes = shape.embeddingLength * tokens * F32_BYTES;
    let hidden = g.op(rowBytes, [g.external(), g.input(tokens * I32_BYTES)]);
    g.expand(hidden);
    // The embeddings input keeps the graph's topology fixed; it is never freed.
    g.expand(g.input(rowBytes));
    const outputIds = g.input(shape.numOutputs * I32_BYTES);
    const outputRowBytes = shape.embeddingLength * shape.numOutputs * F32_BYTES;

    shape.layers.forEach((layer, index) => {
      const residual = hidden;
      const normed = g.op(rowBytes, [g.op(rowBytes, [hidden], true), g.external()], true);
      let attended = layer.numHeadsKv > 0 ? this.attention(layer, normed) : normed;
      let skip = residual;
      let numTokens = tokens;
      if (index === shape.layers.length - 1) {
        // The last layer keeps only the rows that produce outputs.
        attended = g.op(outputRowBytes, [attended, outputIds]);
        skip = g.op(outputRowBytes, [residual, outputIds]);
        numTokens = shape.numOutputs;
      }
      const afterAttention = g.op(shape.embeddingLength * numTokens * F32_BYTES, [attended, skip], true);
      hidden = this.feedForward(layer, afterAttention, numTokens);
    });

    const embeddings = g.op(outputRowBytes, [g.op(outputRowBytes, [hidden], true), g.external()], true);
    const logits = g.op(shape.numOutputRows * shape.numOutputs * F32_BYTES, [g.external(), embeddings]);
    g.markOutput(embeddings);
    g.markOutput(logits);
    g.expand(logits);
    return g.measure();
  }
}

/**
 * Bytes of llama.cpp's compute buffer for one worst-case graph: replays the allocator over the decoder
 * graph of a llama-style model (exact for llama, Mistral and Mixtral-like graphs; other architectures add
 * or drop a few ops, so there it is an estimate).
 */
export function estimateComputeGraphBytes(shape: ComputeGraphShape): number {
  return new DecoderSketch(shape).measure();
}
