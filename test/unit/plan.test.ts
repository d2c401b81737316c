import assert from "node:assert/strict";
import { test } from "node:test";
import { GGML_TYPES, ggmlTensorBytes, ggmlTypeByName, ggmlTypeInfo } from "../../src/gguf/ggml-types.ts";
import type { GgufKv } from "../../src/gguf/gguf-kv.ts";
import { parseGgufHeader } from "../../src/gguf/gguf-reader.ts";
import { type GgufTensor, GgufWriter } from "../../src/gguf/gguf-writer.ts";
import { type GgufModelInfo, ggufModelInfoFromHeader } from "../../src/plan/gguf-model-info.ts";
import { type PlanOptions, planMemory } from "../../src/plan/memory-plan.ts";

interface HeaderShape {
  architecture?: string;
  layers: number;
  embd: number;
  heads: number;
  headsKv: number;
  ff: number;
  vocab: number;
  contextLength?: number;
  experts?: { count: number; used: number };
  metadata?: GgufKv[];
}

/** A llama-style GGUF built in memory (zero weights): only its header matters to the planner. */
function modelInfo(shape: HeaderShape): GgufModelInfo {
  const arch = shape.architecture ?? "llama";
  const { embd, ff, vocab } = shape;
  const kvWidth = (embd / shape.heads) * shape.headsKv;
  const tensor = (name: string, dims: number[]): GgufTensor => ({
    name,
    dims,
    type: "F32",
    data: () => new Float32Array(dims.reduce((a, b) => a * b, 1)),
  });
  const tensors = [tensor("token_embd.weight", [embd, vocab]), tensor("output_norm.weight", [embd])];
  if (arch === "llama") tensors.push(tensor("output.weight", [embd, vocab]));
  for (let layer = 0; layer < shape.layers; layer++) {
    const p = `blk.${layer}.`;
    tensors.push(
      tensor(`${p}attn_norm.weight`, [embd]),
      tensor(`${p}attn_q.weight`, [embd, embd]),
      tensor(`${p}attn_k.weight`, [embd, kvWidth]),
      tensor(`${p}attn_v.weight`, [embd, kvWidth]),
      tensor(`${p}attn_output.weight`, [embd, embd]),
      tensor(`${p}ffn_norm.weight`, [embd]),
    );
    if (shape.experts === undefined) {
      tensors.push(
        tensor(`${p}ffn_gate.weight`, [embd, ff]),
        tensor(`${p}ffn_down.weight`, [ff, embd]),
        tensor(`${p}ffn_up.weight`, [embd, ff]),
      );
    } else {
      const n = shape.experts.count;
      tensors.push(
        tensor(`${p}ffn_gate_inp.weight`, [embd, n]),
        tensor(`${p}ffn_gate_exps.weight`, [embd, ff, n]),
        tensor(`${p}ffn_down_exps.weight`, [ff, embd, n]),
        tensor(`${p}ffn_up_exps.weight`, [embd, ff, n]),
      );
    }
  }
  const metadata: GgufKv[] = [
    { key: "general.architecture", type: "string", value: arch },
    { key: `${arch}.vocab_size`, type: "uint32", value: vocab },
    { key: `${arch}.context_length`, type: "uint32", value: shape.contextLength ?? 2048 },
    { key: `${arch}.embedding_length`, type: "uint32", value: embd },
    { key: `${arch}.block_count`, type: "uint32", value: shape.layers },
    { key: `${arch}.feed_forward_length`, type: "uint32", value: ff },
    { key: `${arch}.attention.head_count`, type: "uint32", value: shape.heads },
    { key: `${arch}.attention.head_count_kv`, type: "uint32", value: shape.headsKv },
    ...(shape.experts === undefined
      ? []
      : ([
          { key: `${arch}.expert_count`, type: "uint32", value: shape.experts.count },
          { key: `${arch}.expert_used_count`, type: "uint32", value: shape.experts.used },
        ] as GgufKv[])),
    ...(shape.metadata ?? []),
  ];
  return ggufModelInfoFromHeader(parseGgufHeader(new GgufWriter({ metadata, tensors }).toBuffer()));
}

/** The shape of stories260K: 5 layers, dim 64, 8 heads / 4 KV heads of 8, FFN 172, vocab 512, F32. */
const STORIES = { layers: 5, embd: 64, heads: 8, headsKv: 4, ff: 172, vocab: 512 } as const;
const SERVER_DEFAULTS: PlanOptions = { ctxSize: 2048, parallel: 8, batchSize: 512, kvType: "f16" };

test("the type table has llama.cpp's block sizes and bytes per block", () => {
  const expected: Record<string, [number, number]> = {
    F32: [1, 4],
    F16: [1, 2],
    BF16: [1, 2],
    Q4_0: [32, 18],
    Q4_1: [32, 20],
    Q5_0: [32, 22],
    Q5_1: [32, 24],
    Q8_0: [32, 34],
    Q8_1: [32, 36],
    Q2_K: [256, 84],
    Q3_K: [256, 110],
    Q4_K: [256, 144],
    Q5_K: [256, 176],
    Q6_K: [256, 210],
    Q8_K: [256, 292],
    IQ2_XXS: [256, 66],
    IQ2_XS: [256, 74],
    IQ3_XXS: [256, 98],
    IQ1_S: [256, 50],
    IQ4_NL: [32, 18],
    IQ3_S: [256, 110],
    IQ2_S: [256, 82],
    IQ4_XS: [256, 136],
    IQ1_M: [256, 56],
    I8: [1, 1],
    I16: [1, 2],
    I32: [1, 4],
    I64: [1, 8],
    F64: [1, 8],
    TQ1_0: [256, 54],
    TQ2_0: [256, 66],
    MXFP4: [32, 17],
  };
  for (const [name, [blockSize, bytesPerBlock]] of Object.entries(expected)) {
    const info = ggmlTypeByName(name);
    assert.deepEqual([info.blockSize, info.bytesPerBlock], [blockSize, bytesPerBlock], name);
  }
  assert.equal(ggmlTypeInfo(12).name, "Q4_K");
  assert.equal(ggmlTypeInfo(39).name, "MXFP4");
  assert.equal(GGML_TYPES.has(4), false, "id 4 (Q4_2) was removed from ggml");
  assert.throws(() => ggmlTypeInfo(99), RangeError);
});

test("tensor bytes are rows times the row size of whole blocks", () => {
  assert.equal(ggmlTensorBytes(ggmlTypeByName("Q4_K"), [4096, 4096]), 4096 * (4096 / 256) * 144);
  assert.equal(ggmlTensorBytes(ggmlTypeByName("Q8_0"), [64, 3, 2]), 6 * 2 * 34);
  assert.equal(ggmlTensorBytes(ggmlTypeByName("F16"), [7, 5]), 70);
  assert.throws(() => ggmlTensorBytes(ggmlTypeByName("Q4_0"), [48, 2]), /multiple of 32/);
});

test("stories260K's shape costs 640 KV bytes per token at f16 and the quantized types scale by their blocks", () => {
  const stories = modelInfo(STORIES);
  const perToken = (kvType: PlanOptions["kvType"]): number =>
    planMemory(stories, { ...SERVER_DEFAULTS, kvType }).kvBytesPerToken;
  assert.equal(perToken("f16"), 640);
  assert.equal(perToken("f32"), 1280);
  assert.equal(perToken("q8_0"), (640 / 2) * (34 / 32));
  assert.equal(perToken("q4_0"), (640 / 2) * (18 / 32));
});

test("a quantized KV cache warns when the head size is not a whole number of blocks", () => {
  const plan = planMemory(modelInfo(STORIES), { ...SERVER_DEFAULTS, kvType: "q8_0" });
  assert.equal(plan.context.flashAttention, true, "a quantized V cache turns flash attention on");
  assert.match(plan.warnings.join("\n"), /head size 8 is not a multiple of 32/);
  assert.throws(
    () => planMemory(modelInfo(STORIES), { ...SERVER_DEFAULTS, kvType: "q4_0", flashAttention: false }),
    RangeError,
  );
});

test("the server defaults give 8 streams of 2048 cells and the buffer sizes llama.cpp allocated for stories260K", () => {
  const plan = planMemory(modelInfo(STORIES), SERVER_DEFAULTS);
  assert.equal(plan.context.numKvStreams, 8);
  assert.equal(plan.context.kvCellsPerStream, 2048);
  assert.equal(plan.kvBytes, 16384 * 640);
  assert.equal(plan.weightsBytes, 1_171_200);
  assert.equal(plan.numParameters, 292_800);
  assert.equal(plan.numActiveParameters, 292_800);
  assert.equal(plan.outputBytes, 8 * 512 * 4);
  assert.equal(plan.outputMaxBytes, 512 * 512 * 4);
  // Compute buffers llama.cpp reserved for this shape (node-llama-cpp 3.21.1, CPU, no flash attention).
  assert.equal(plan.computeBytes, 38_545_408);
  assert.equal(
    planMemory(modelInfo(STORIES), { ctxSize: 256, parallel: 1, batchSize: 32, kvType: "f16" }).computeBytes,
    344_704,
  );
  assert.equal(
    planMemory(modelInfo(STORIES), { ctxSize: 1024, parallel: 4, batchSize: 512, kvType: "f16", flashAttention: true })
      .computeBytes,
    5_265_408 - 4096 * 640,
  );
  assert.equal(plan.totalBytes, plan.weightsBytes + plan.kvBytes + plan.outputBytes + plan.computeBytes);
});

test("context sizes are padded the way node-llama-cpp and llama.cpp pad them", () => {
  const stories = modelInfo(STORIES);
  const small = planMemory(stories, { ctxSize: 100, parallel: 3, batchSize: 10, kvType: "f16" }).context;
  assert.deepEqual([small.kvCellsPerStream, small.contextTokens, small.batchSize], [256, 768, 10]);
  // Past the training context node-llama-cpp stops padding each sequence; llama.cpp still pads the total.
  const long = planMemory(stories, { ctxSize: 3000, parallel: 3, batchSize: 512, kvType: "f16" });
  assert.deepEqual([long.context.kvCellsPerStream, long.context.contextTokens], [3072, 9216]);
  assert.match(long.warnings.join("\n"), /exceeds the training context 2048/);
  const tiny = planMemory(stories, { ctxSize: 16, parallel: 1, batchSize: 512, kvType: "f16" }).context;
  assert.deepEqual(
    [tiny.contextTokens, tiny.batchSize, tiny.ubatchSize],
    [256, 256, 256],
    "a batch never exceeds the context",
  );
});

test("a shared KV pool is one stream of the requested cells padded to 256", () => {
  const plan = planMemory(modelInfo(STORIES), { ...SERVER_DEFAULTS, kvCacheTokens: 5000 });
  assert.equal(plan.context.isKvUnified, true);
  assert.equal(plan.context.numKvStreams, 1);
  assert.equal(plan.context.kvCellsPerStream, 5120);
  assert.equal(plan.kvBytes, 5120 * 640);
});

test("an MoE model reports the parameters one token reads: all but the unrouted share of the experts", () => {
  const moe = modelInfo({
    layers: 2,
    embd: 16,
    heads: 2,
    headsKv: 1,
    ff: 32,
    vocab: 300,
    experts: { count: 8, used: 2 },
  });
  const plan = planMemory(moe, SERVER_DEFAULTS);
  const perLayer = 16 + 256 + 128 + 128 + 256 + 16 + 16 * 8 + 3 * 16 * 32 * 8;
  assert.equal(plan.numParameters, 2 * 16 * 300 + 16 + 2 * perLayer);
  assert.equal(plan.numExpertParameters, 2 * 3 * 16 * 32 * 8);
  assert.equal(plan.numActiveParameters, plan.numParameters - 24_576 * (1 - 2 / 8));
  assert.equal(plan.numActiveParameters, 17_616);
  assert.ok(plan.numActiveParameters < plan.numParameters);
});

test("sliding-window layers keep at most the window plus a micro-batch of cells", () => {
  const gemma = (metadata: GgufKv[]): GgufModelInfo =>
    modelInfo({
      architecture: "gemma3",
      layers: 12,
      embd: 64,
      heads: 4,
      headsKv: 2,
      ff: 128,
      vocab: 512,
      contextLength: 8192,
      metadata: [{ key: "gemma3.attention.sliding_window", type: "uint32", value: 512 }, ...metadata],
    });
  const model = gemma([]);
  assert.equal(model.slidingWindow, 512);
  // gemma3's default period of 6: five sliding layers, then one full-attention layer.
  assert.deepEqual(
    model.layers.map((layer) => layer.isSlidingWindow),
    [true, true, true, true, true, false, true, true, true, true, true, false],
  );

  const plan = planMemory(model, { ctxSize: 8192, parallel: 1, batchSize: 512, kvType: "f16" });
  assert.equal(plan.kvBytesPerToken, 2 * 128);
  assert.equal(plan.swaKvBytesPerToken, 10 * 128);
  // node-llama-cpp adds one batch slot for sliding-window models: 512 + 513 cells, padded to 1280.
  assert.equal(plan.context.ubatchSize, 513);
  assert.equal(plan.context.swaKvCellsPerStream, 1280);
  assert.equal(plan.kvBytes, 8192 * 256 + 1280 * 1280);

  const short = planMemory(model, { ctxSize: 1024, parallel: 2, batchSize: 512, kvType: "f16" });
  assert.equal(short.context.swaKvCellsPerStream, 1024, "never more cells than the context");

  const explicit = gemma([
    {
      key: "gemma3.attention.sliding_window_pattern",
      type: "array",
      itemType: "bool",
      value: Array.from({ length: 12 }, (_, layer) => layer % 2 === 0),
    },
  ]);
  assert.equal(
    planMemory(explicit, { ctxSize: 8192, parallel: 1, batchSize: 512, kvType: "f16" }).swaKvBytesPerToken,
    6 * 128,
  );
});

test("per-layer KV head counts and explicit key and value lengths are honoured", () => {
  const model = modelInfo({
    ...STORIES,
    metadata: [
      { key: "llama.attention.key_length", type: "uint32", value: 16 },
      { key: "llama.attention.value_length", type: "uint32", value: 8 },
    ],
  });
  assert.equal(planMemory(model, { ...SERVER_DEFAULTS, flashAttention: true }).kvBytesPerToken, 5 * 4 * (16 + 8) * 2);

  const varying = modelInfo({ ...STORIES, headsKv: 4 });
  const layers = varying.layers.map((layer, index) => ({ ...layer, numHeadsKv: [4, 2, 2, 1, 0][index]! }));
  const plan = planMemory({ ...varying, layers }, { ...SERVER_DEFAULTS, flashAttention: true });
  assert.equal(plan.kvBytesPerToken, (4 + 2 + 2 + 1) * 8 * 2 * 2);
  // Without flash attention llama.cpp stores every layer's V as wide as the widest one.
  assert.equal(
    planMemory({ ...varying, layers }, SERVER_DEFAULTS).kvBytesPerToken,
    (4 + 2 + 2 + 1) * 8 * 2 + 4 * 4 * 8 * 2,
  );
  assert.match(plan.warnings.join("\n"), /without attention/);
});

test("bad options are rejected with a RangeError", () => {
  const stories = modelInfo(STORIES);
  assert.throws(() => planMemory(stories, { ...SERVER_DEFAULTS, parallel: 0 }), RangeError);
  assert.throws(() => planMemory(stories, { ...SERVER_DEFAULTS, ctxSize: 1.5 }), RangeError);
  assert.throws(() => planMemory(stories, { ...SERVER_DEFAULTS, kvType: "q5_0" as PlanOptions["kvType"] }), RangeError);
});
