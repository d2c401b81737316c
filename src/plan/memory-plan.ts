import { type GgmlTypeInfo, ggmlTypeByName } from "../gguf/ggml-types.ts";
import { type ComputeLayerShape, estimateComputeGraphBytes, type FeedForwardShape } from "./compute-buffer.ts";
import { type ContextLayout, resolveContextLayout } from "./context-layout.ts";
import type { GgufModelInfo } from "./gguf-model-info.ts";

export type { ContextLayout } from "./context-layout.ts";

export const KV_CACHE_TYPES = ["f16", "q8_0", "q4_0", "f32"] as const;
export type KvCacheType = (typeof KV_CACHE_TYPES)[number];

export interface PlanOptions {
  /** Tokens each sequence may hold (prompt plus completion). */
  readonly ctxSize: number;
  /** Sequences decoded together (the server's `parallel`). */
  readonly parallel: number;
  /** Size of one KV pool shared by all sequences (a unified cache); null or absent gives each sequence its own. */
  readonly kvCacheTokens?: number | null;
  /** Type of both the K and the V cache. */
  readonly kvType: KvCacheType;
  /** Tokens one decode may carry. */
  readonly batchSize: number;
  /** Tokens of one micro-batch. Defaults to the batch size (node-llama-cpp never splits a batch). */
  readonly ubatchSize?: number;
  /**
   * Defaults to the server's choice on CPU: on for a shared pool and for quantized caches (which need it), off for
   * f16/f32 caches of one slab per sequence.
   */
  readonly flashAttention?: boolean;
}

export interface WeightsByType {
  readonly type: string;
  readonly numTensors: number;
  readonly numElements: number;
  readonly bytes: number;
}

export interface MemoryPlan {
  readonly architecture: string;
  readonly context: ContextLayout;
  readonly weightsBytes: number;
  readonly weightsByType: readonly WeightsByType[];
  readonly numParameters: number;
  /** Parameters read for one token: all of them for dense models, the routed share of the experts for MoE. */
  readonly numActiveParameters: number;
  readonly numExpertParameters: number;
  /** KV bytes one token costs in the full-attention layers. */
  readonly kvBytesPerToken: number;
  /** KV bytes one token costs in the sliding-window layers, which keep at most a window of tokens. */
  readonly swaKvBytesPerToken: number;
  /** Cells over all streams: the full-attention cache plus, for sliding-window models, the window cache. */
  readonly numKvCells: number;
  readonly kvBytes: number;
  /** Logits buffer reserved when the context is created: one row per sequence. */
  readonly outputBytes: number;
  /** The logits buffer grows to this when one batch asks for logits at every position. */
  readonly outputMaxBytes: number;
  /** The compute buffer llama.cpp reserves for its worst-case graph. */
  readonly computeBytes: number;
  /** Weights + KV + output + compute, as allocated when the context is created. */
  readonly totalBytes: number;
  /** Same with the logits buffer at its largest. */
  readonly totalMaxBytes: number;
  readonly warnings: readonly string[];
}

/**
 * Encoder architectures llama.cpp creates no KV cache for (`llama_model::create_memory`): their attention runs over
 * the batch alone.
 */
const CACHELESS_ARCHITECTURES: ReadonlySet<string> = new Set([
  "bert",
  "jina-bert-v2",
  "jina-bert-v3",
  "nomic-bert",
  "nomic-bert-moe",
  "neo-bert",
  "eurobert",
  "modern-bert",
  "gemma-embedding",
]);

/** Logits are F32 rows. */
const F32_BYTES = ggmlTypeByName("F32").bytesPerBlock;

const padUp = (value: number, padding: number): number => Math.ceil(value / padding) * padding;
const EXPERT_TENSOR = /^blk\.\d+\.ffn_(gate|up|down|gate_up)_exps\.(weight|bias)$/;

function assertCount(name: string, value: number | null | undefined, minimum: number): void {
  if (value != null && (!Number.isSafeInteger(value) || value < minimum))
    throw new RangeError(`${name} must be an integer of at least ${minimum}, got ${value}`);
}

interface KvCosts {
  readonly fullBytesPerToken: number;
  readonly swaBytesPerToken: number;
  /** Without flash attention llama.cpp stores V transposed and as wide as its widest layer. */
  readonly transposedValueWidth: number;
}

function rowBytes(type: GgmlTypeInfo, width: number, warnings: string[]): number {
  if (width % type.blockSize !== 0)
    warnings.push(
      `a ${type.name} KV row of ${width} values is not a whole number of ${type.blockSize}-value blocks; llama.cpp will refuse it`,
    );
  return Math.ceil(width / type.blockSize) * type.bytesPerBlock;
}

function kvCosts(model: GgufModelInfo, layout: ContextLayout, type: GgmlTypeInfo, warnings: string[]): KvCosts {
  if (type.blockSize > 1) {
    const heads = new Set(
      model.layers.filter((layer) => layer.numHeadsKv > 0).flatMap((layer) => [layer.keyLength, layer.valueLength]),
    );
    for (const head of heads)
      if (head % type.blockSize !== 0)
        warnings.push(
          `llama.cpp refuses a ${type.name} KV cache for this model: head size ${head} is not a multiple of ${type.blockSize}`,
        );
  }
  const valueWidthMax = Math.max(0, ...model.layers.map((layer) => layer.numHeadsKv * layer.valueLength));
  let full = 0;
  let swa = 0;
  for (const layer of model.layers) {
    if (layer.numHeadsKv === 0) continue;
    const valueWidth = layout.flashAttention ? layer.numHeadsKv * layer.valueLength : valueWidthMax;
    const bytes = rowBytes(type, layer.numHeadsKv * layer.keyLength, warnings) + rowBytes(type, valueWidth, warnings);
    if (layer.isSlidingWindow) swa += bytes;
    else full += bytes;
  }
  return { fullBytesPerToken: full, swaBytesPerToken: swa, transposedValueWidth: valueWidthMax };
}

function feedForwardOf(
  model: GgufModelInfo,
  layerIndex: number,
  tensorDims: ReadonlyMap<string, readonly number[]>,
): FeedForwardShape {
  const prefix = `blk.${layerIndex}.`;
  const experts = tensorDims.get(`${prefix}ffn_up_exps.weight`) ?? tensorDims.get(`${prefix}ffn_down_exps.weight`);
  if (experts !== undefined && model.numExperts > 0) {
    const up = tensorDims.get(`${prefix}ffn_up_exps.weight`);
    return {
      kind: "moe",
      feedForwardLength: up?.[1] ?? experts[0]!,
      numExperts: model.numExperts,
      numExpertsUsed: Math.max(1, model.numExpertsUsed),
    };
  }
  const length = tensorDims.get(`${prefix}ffn_up.weight`)?.[1] ?? model.layers[layerIndex]!.feedForwardLength;
  return length > 0 ? { kind: "dense", feedForwardLength: length } : { kind: "none" };
}

/** Side of the Hadamard rotation llama.cpp puts around a quantized cache (`attn_rot_k`/`attn_rot_v`). */
function rotationSizes(model: GgufModelInfo, type: GgmlTypeInfo): { key: number; value: number } {
  if (type.blockSize === 1) return { key: 0, value: 0 };
  const withKv = model.layers.filter((layer) => layer.numHeadsKv > 0);
  const uniform = (pick: (layer: (typeof withKv)[number]) => number): number | null =>
    withKv.length > 0 && withKv.every((layer) => pick(layer) === pick(withKv[0]!)) ? pick(withKv[0]!) : null;
  const keyHead = uniform((layer) => layer.keyLength);
  const valueHead = uniform((layer) => layer.valueLength);
  // The K rotation is the largest power of two (at least 64) dividing the head size; V always uses 64.
  let key = 0;
  if (keyHead !== null && keyHead % 64 === 0) {
    key = 64;
    while (keyHead % (key * 2) === 0) key *= 2;
  }
  return { key, value: valueHead !== null && valueHead % 64 === 0 ? 64 : 0 };
}

function computeBytes(model: GgufModelInfo, layout: ContextLayout, costs: KvCosts, type: GgmlTypeInfo): number {
  const dims = new Map(model.tensors.map((tensor) => [tensor.name, tensor.dims]));
  const layers: ComputeLayerShape[] = model.layers.map((layer, index) => ({
    numHeads: layer.numHeads,
    numHeadsKv: layer.numHeadsKv,
    keyLength: layer.keyLength,
    valueLength: layer.valueLength,
    isSlidingWindow: layer.isSlidingWindow,
    feedForward: feedForwardOf(model, index, dims),
  }));
  const outputRows = (dims.get("output.weight") ?? dims.get("token_embd.weight"))?.[1] ?? model.vocabSize;
  const rotation = rotationSizes(model, type);
  const sequences = layout.numSequences;
  // llama.cpp reserves a full micro-batch (every token an output) and a one-token-per-sequence graph.
  const graphTokens = Math.min(layout.contextTokens, layout.ubatchSize);
  const graphs = [
    { numTokens: padUp(graphTokens, sequences), numOutputs: graphTokens },
    { numTokens: sequences, numOutputs: sequences },
  ];
  return Math.max(
    ...graphs.map((graph) =>
      estimateComputeGraphBytes({
        ...graph,
        embeddingLength: model.embeddingLength,
        numOutputRows: outputRows,
        layers,
        numStreams: layout.numKvStreams,
        kvCellsPerStream: layout.kvCellsPerStream,
        swaKvCellsPerStream: layout.swaKvCellsPerStream,
        flashAttention: layout.flashAttention,
        transposedValueWidth: costs.transposedValueWidth,
        isKeyCacheF32: layout.kvType === "f32",
        isValueCacheF32: layout.kvType === "f32",
        keyRotationSize: rotation.key,
        valueRotationSize: rotation.value,
      }),
    ),
  );
}

function weightsByType(model: GgufModelInfo): WeightsByType[] {
  const groups = new Map<string, { type: string; numTensors: number; numElements: number; bytes: number }>();
  for (const tensor of model.tensors) {
    const group = groups.get(tensor.typeName) ?? { type: tensor.typeName, numTensors: 0, numElements: 0, bytes: 0 };
    group.numTensors++;
    group.numElements += tensor.numElements;
    group.bytes += tensor.bytes;
    groups.set(tensor.typeName, group);
  }
  return [...groups.values()].sort((a, b) => b.bytes - a.bytes);
}

/**
 * Where the RAM of a model served with these options goes, computed from its GGUF header alone:
 * weights, KV cache, logits buffer and compute buffer, sized the way llama.cpp (through node-llama-cpp) sizes them.
 */
export function planMemory(model: GgufModelInfo, options: PlanOptions): MemoryPlan {
  assertCount("ctxSize", options.ctxSize, 1);
  assertCount("parallel", options.parallel, 1);
  assertCount("batchSize", options.batchSize, 1);
  assertCount("ubatchSize", options.ubatchSize, 1);
  assertCount("kvCacheTokens", options.kvCacheTokens, 1);
  if (!KV_CACHE_TYPES.includes(options.kvType))
    throw new RangeError(`kvType must be one of ${KV_CACHE_TYPES.join(", ")}, got ${String(options.kvType)}`);

  const warnings: string[] = [];
  const layout = resolveContextLayout(model, options);
  const kvType = ggmlTypeByName(options.kvType);
  const isCacheless = CACHELESS_ARCHITECTURES.has(model.architecture);
  const costs = isCacheless
    ? { fullBytesPerToken: 0, swaBytesPerToken: 0, transposedValueWidth: 0 }
    : kvCosts(model, layout, kvType, warnings);
  const kvBytes =
    layout.numKvStreams *
    (layout.kvCellsPerStream * costs.fullBytesPerToken + layout.swaKvCellsPerStream * costs.swaBytesPerToken);

  const byType = weightsByType(model);
  const weightsBytes = byType.reduce((sum, group) => sum + group.bytes, 0);
  const numParameters = byType.reduce((sum, group) => sum + group.numElements, 0);
  const numExpertParameters = model.tensors
    .filter((tensor) => EXPERT_TENSOR.test(tensor.name))
    .reduce((sum, tensor) => sum + tensor.numElements, 0);
  const idleShare = model.numExperts > 0 ? 1 - Math.min(model.numExpertsUsed, model.numExperts) / model.numExperts : 0;
  const numActiveParameters = numParameters - Math.round(numExpertParameters * idleShare);

  const outputBytes = model.vocabSize * layout.numSequences * F32_BYTES;
  const outputMaxBytes = model.vocabSize * Math.max(layout.batchSize, layout.numSequences) * F32_BYTES;
  const compute = computeBytes(model, layout, costs, kvType);
  if (model.layers.some((layer) => layer.numHeadsKv === 0))
    warnings.push("layers without attention (recurrent state) are not planned");
  if (options.ctxSize > (model.contextLength ?? Infinity))
    warnings.push(`ctxSize ${options.ctxSize} exceeds the training context ${model.contextLength}`);

  const fixedBytes = weightsBytes + kvBytes + compute;
  return {
    architecture: model.architecture,
    context: layout,
    weightsBytes,
    weightsByType: byType,
    numParameters,
    numActiveParameters,
    numExpertParameters,
    kvBytesPerToken: costs.fullBytesPerToken,
    swaKvBytesPerToken: costs.swaBytesPerToken,
    numKvCells: isCacheless
      ? 0
      : layout.numKvStreams *
        (layout.kvCellsPerStream + (model.slidingWindow === null ? 0 : layout.swaKvCellsPerStream)),
    kvBytes,
    outputBytes,
    outputMaxBytes,
    computeBytes: compute,
    totalBytes: fixedBytes + outputBytes,
    totalMaxBytes: fixedBytes + outputMaxBytes,
    warnings: [...new Set(warnings)],
  };
}
