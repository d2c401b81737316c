import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { readGgufHeader } from "../../src/gguf/gguf-reader.ts";
import { findModelShape, MODEL_SHAPES } from "../../src/gguf/model-shapes.ts";
import { quantizeQ4_0 } from "../../src/gguf/quantize.ts";
import {
  planSyntheticModel,
  type SyntheticModelOptions,
  writeSyntheticLlama,
  writeSyntheticModel,
} from "../../src/gguf/synthetic-model.ts";
import { syntheticWeights, WEIGHT_STD } from "../../src/gguf/synthetic-weights.ts";
import { withTempDir } from "../helpers/gguf-files.ts";

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

const SMALL = {
  vocabSize: 512,
  embeddingLength: 64,
  blockCount: 2,
  headCount: 4,
  headCountKv: 2,
  feedForwardLength: 96,
};

test("every shape in the table has the published model's parameter count", () => {
  const published: Record<string, number> = {
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.2-1b": 1_235_814_400,
    "qwen2.5-7b": 7_615_616_512,
    "qwen2.5-0.5b": 494_032_768,
    "mistral-7b": 7_241_732_096,
    "mixtral-8x7b": 46_702_792_704,
  };
  for (const [name, count] of Object.entries(published)) {
    const plan = planSyntheticModel({ ...findModelShape(name)!, tensorType: "Q4_0" });
    assert.equal(plan.parameterCount, count, name);
  }
  const mixtral = planSyntheticModel({ ...findModelShape("mixtral-8x7b")!, tensorType: "Q4_0" });
  assert.equal(mixtral.activeParameterCount, 12_879_925_248, "2 of 8 experts per token");
  assert.deepEqual(
    MODEL_SHAPES.map((shape) => shape.name),
    ["llama-3.1-8b", "llama-3.2-1b", "qwen2.5-7b", "qwen2.5-0.5b", "mistral-7b", "mixtral-8x7b", "tiny-moe"],
  );
  assert.equal(findModelShape("Llama-3.1-8B")?.name, "llama-3.1-8b", "names match case-insensitively");
  assert.equal(findModelShape("llama-9"), null);
});

test("MoE layers carry a router and stacked expert tensors instead of a dense FFN", () => {
  const plan = planSyntheticModel({ ...findModelShape("tiny-moe")!, tensorType: "Q8_0" });
  const block = plan.tensors.filter((tensor) => tensor.name.startsWith("blk.1."));
  assert.deepEqual(
    block.map((tensor) => [tensor.name, tensor.dims, tensor.type]),
    [
      ["blk.1.attn_norm.weight", [64], "F32"],
      ["blk.1.attn_q.weight", [64, 64], "Q8_0"],
      ["blk.1.attn_k.weight", [64, 32], "Q8_0"],
      ["blk.1.attn_v.weight", [64, 32], "Q8_0"],
      ["blk.1.attn_output.weight", [64, 64], "Q8_0"],
      ["blk.1.ffn_norm.weight", [64], "F32"],
      ["blk.1.ffn_gate_inp.weight", [64, 4], "F32"],
      ["blk.1.ffn_gate_exps.weight", [64, 128, 4], "Q8_0"],
      ["blk.1.ffn_up_exps.weight", [64, 128, 4], "Q8_0"],
      ["blk.1.ffn_down_exps.weight", [128, 64, 4], "Q8_0"],
    ],
  );
  assert.equal(plan.tensors.length, 3 + 2 * 10);
  assert.equal(plan.activeParameterCount, plan.parameterCount - 2 * 2 * 3 * 64 * 128);
});

test("qwen2 models add q/k/v biases, and tied embeddings drop output.weight", () => {
  const plan = planSyntheticModel({ ...SMALL, architecture: "qwen2", tiedEmbeddings: true, tensorType: "Q4_0" });
  const names = plan.tensors.map((tensor) => tensor.name);
  assert.ok(!names.includes("output.weight"));
  assert.deepEqual(
    plan.tensors
      .filter((tensor) => tensor.name.endsWith(".bias") && tensor.name.startsWith("blk.0."))
      .map((tensor) => [tensor.name, tensor.dims, tensor.type]),
    [
      ["blk.0.attn_q.bias", [64], "F32"],
      ["blk.0.attn_k.bias", [32], "F32"],
      ["blk.0.attn_v.bias", [32], "F32"],
    ],
  );
  assert.equal(
    plan.tensors.find((tensor) => tensor.name === "token_embd.weight")?.type,
    "Q8_0",
    "a tied token_embd is the output projection, which Q4_0 files keep at higher precision",
  );
});

test("Q4_0 files keep output.weight at Q8_0, and 8-expert models their attention k and v too", () => {
  const typeOf = (options: SyntheticModelOptions, name: string): string | undefined =>
    planSyntheticModel(options).tensors.find((tensor) => tensor.name === name)?.type;
  assert.equal(typeOf({ ...SMALL, tensorType: "Q4_0" }, "token_embd.weight"), "Q4_0");
  assert.equal(typeOf({ ...SMALL, tensorType: "Q4_0" }, "output.weight"), "Q8_0");
  assert.equal(typeOf({ ...SMALL, tensorType: "Q4_0" }, "blk.0.attn_v.weight"), "Q4_0");
  const eightExperts = { ...SMALL, expertCount: 8, expertUsedCount: 2, tensorType: "Q4_0" } as const;
  assert.equal(typeOf(eightExperts, "blk.0.attn_k.weight"), "Q8_0");
  assert.equal(typeOf(eightExperts, "blk.0.attn_v.weight"), "Q8_0");
  assert.equal(typeOf(eightExperts, "blk.0.attn_q.weight"), "Q4_0");
  assert.equal(typeOf({ ...SMALL, tensorType: "Q8_0" }, "output.weight"), "Q8_0");
  assert.equal(typeOf({ ...SMALL, tensorType: "F32" }, "output.weight"), "F32");
});

test("shapes that llama.cpp cannot load or that cannot be quantized are rejected", () => {
  const cases: [SyntheticModelOptions, RegExp][] = [
    [{ ...SMALL, embeddingLength: 48, headCount: 4, tensorType: "Q4_0" }, /multiples of 32/],
    [{ ...SMALL, feedForwardLength: 100, tensorType: "Q8_0" }, /multiples of 32/],
    [{ ...SMALL, expertCount: 4, expertUsedCount: 5 }, /expertUsedCount must be between 1 and 4/],
    [{ ...SMALL, expertCount: 4, expertUsedCount: 0 }, /expertUsedCount must be between 1 and 4/],
    [{ ...SMALL, expertUsedCount: 2 }, /expertUsedCount must be between 0 and 0/],
    [{ ...SMALL, architecture: "qwen2", expertCount: 4, expertUsedCount: 2 }, /llama architecture/],
    [{ ...SMALL, ropeFreqBase: 0 }, /ropeFreqBase/],
    [{ ...SMALL, vocabSize: 100 }, /vocabSize must be at least/],
    [{ ...SMALL, headCountKv: 3 }, /headCountKv must divide headCount/],
  ];
  for (const [options, message] of cases)
    assert.throws(() => planSyntheticModel(options), message, JSON.stringify(options));
  assert.doesNotThrow(() => planSyntheticModel({ ...SMALL, feedForwardLength: 100, tensorType: "F16" }));
});

test("a written model matches its plan, holds the quantized synthetic weights and is deterministic", async () => {
  await withTempDir("synth", async (dir) => {
    const options: SyntheticModelOptions = {
      ...SMALL,
      expertCount: 4,
      expertUsedCount: 2,
      tensorType: "Q4_0",
      seed: 3,
    };
    const [first, second] = [join(dir, "a.gguf"), join(dir, "b.gguf")];
    const plan = await writeSyntheticModel(first, options);
    await writeSyntheticModel(second, options);
    const bytes = await readFile(first);
    assert.equal(sha256(bytes), sha256(await readFile(second)));
    assert.equal((await stat(first)).size, plan.fileBytes);

    const header = await readGgufHeader(first);
    assert.deepEqual(
      header.tensors.map((tensor) => [tensor.name, tensor.dims]),
      plan.tensors.map((tensor) => [tensor.name, tensor.dims]),
    );
    const kv = new Map(header.metadata.map((entry) => [entry.key, entry.value]));
    assert.equal(kv.get("general.file_type"), 2, "MOSTLY_Q4_0");
    assert.equal(kv.get("llama.expert_count"), 4);
    assert.equal(kv.get("llama.expert_used_count"), 2);

    const embedding = header.tensors.find((tensor) => tensor.name === "token_embd.weight")!;
    const values = syntheticWeights("token_embd.weight", 64 * 512, 64, 3, WEIGHT_STD).next().value as Float32Array;
    const at = header.dataOffset + embedding.offset;
    assert.deepEqual(bytes.subarray(at, at + 18 * 2 * 512), Buffer.from(quantizeQ4_0(values)));
  });
});

test("writeSyntheticModel with llama defaults writes exactly what writeSyntheticLlama writes", async () => {
  await withTempDir("synth", async (dir) => {
    const shape = await writeSyntheticLlama(join(dir, "llama.gguf"), { ...SMALL, tensorType: "F32", seed: 5 });
    assert.equal(shape.tensorType, "F32");
    await writeSyntheticModel(join(dir, "model.gguf"), { ...SMALL, tensorType: "F32", seed: 5 });
    assert.equal(sha256(await readFile(join(dir, "llama.gguf"))), sha256(await readFile(join(dir, "model.gguf"))));
    await assert.rejects(
      writeSyntheticLlama(join(dir, "q.gguf"), { tensorType: "Q8_0" as "F16" }),
      /unsupported tensorType/,
    );
  });
});
