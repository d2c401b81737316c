/**
 * Models written by `pagoda synth` load in llama.cpp (through node-llama-cpp) and generate: quantized, MoE,
 * qwen2 with biases, and with a real-sized vocabulary. llama.cpp refuses files with missing, extra or misshapen
 * tensors, so loading at all checks the layout; the header checks pin the shapes to the table.
 */

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { getLlama, type Llama, LlamaCompletion, LlamaLogLevel, type LlamaModel } from "node-llama-cpp";
import { GGML_TYPE_ID } from "../../src/gguf/ggml-types.ts";
import { type GgufHeader, readGgufHeader } from "../../src/gguf/gguf-reader.ts";
import { findModelShape } from "../../src/gguf/model-shapes.ts";
import { synth } from "../helpers/gguf-files.ts";
import { greedyTokens } from "../helpers/greedy-tokens.ts";

let dir: string;
let llama: Llama;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-synth-model-"));
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
});

after(async () => {
  await llama?.dispose();
  if (dir != null) await rm(dir, { recursive: true, force: true });
});

async function synthesize(fileName: string, ...argv: string[]): Promise<string> {
  const path = join(dir, fileName);
  const { code, stderr } = await synth(...argv, "--out", path);
  assert.equal(code, 0, stderr);
  return path;
}

/** Loads the model, checks it with `inspect`, and greedily generates five tokens after a short prompt. */
async function loadAndGenerate(
  path: string,
  inspect: (model: LlamaModel) => void = () => undefined,
): Promise<number[]> {
  const model = await llama.loadModel({ modelPath: path });
  try {
    inspect(model);
    return await greedyTokens(model);
  } finally {
    await model.dispose();
  }
}

function tensorsOf(header: GgufHeader): Map<string, { dims: number[]; ggmlType: number }> {
  return new Map(header.tensors.map((tensor) => [tensor.name, { dims: tensor.dims, ggmlType: tensor.ggmlType }]));
}

test("a tiny-moe Q8_0 model has the table's expert shapes, loads and generates", async () => {
  const shape = findModelShape("tiny-moe")!;
  const path = await synthesize("tiny-moe.gguf", "--like", "tiny-moe", "--type", "q8_0");
  const tensors = tensorsOf(await readGgufHeader(path));
  const nEmbd = shape.embeddingLength;
  const nEmbdKv = (nEmbd / shape.headCount) * shape.headCountKv;
  const nFf = shape.feedForwardLength;
  const q8 = GGML_TYPE_ID.Q8_0;
  assert.equal(tensors.size, 3 + shape.blockCount * 10);
  assert.deepEqual(tensors.get("token_embd.weight"), { dims: [nEmbd, shape.vocabSize], ggmlType: q8 });
  assert.deepEqual(tensors.get("output.weight"), { dims: [nEmbd, shape.vocabSize], ggmlType: q8 });
  for (let block = 0; block < shape.blockCount; block++) {
    const prefix = `blk.${block}`;
    assert.deepEqual(tensors.get(`${prefix}.attn_k.weight`), { dims: [nEmbd, nEmbdKv], ggmlType: q8 });
    assert.deepEqual(tensors.get(`${prefix}.ffn_gate_inp.weight`), {
      dims: [nEmbd, shape.expertCount],
      ggmlType: GGML_TYPE_ID.F32,
    });
    assert.deepEqual(tensors.get(`${prefix}.ffn_gate_exps.weight`), {
      dims: [nEmbd, nFf, shape.expertCount],
      ggmlType: q8,
    });
    assert.deepEqual(tensors.get(`${prefix}.ffn_up_exps.weight`), {
      dims: [nEmbd, nFf, shape.expertCount],
      ggmlType: q8,
    });
    assert.deepEqual(tensors.get(`${prefix}.ffn_down_exps.weight`), {
      dims: [nFf, nEmbd, shape.expertCount],
      ggmlType: q8,
    });
    assert.equal(tensors.has(`${prefix}.ffn_up.weight`), false);
  }

  const generated = await loadAndGenerate(path, (model) => {
    assert.equal(model.fileInfo.metadata.general.architecture, "llama");
    assert.equal(model.fileInsights.totalLayers, shape.blockCount + 1);
    assert.equal(model.fileInsights.embeddingVectorSize, nEmbd);
    const llamaMetadata = model.fileInfo.architectureMetadata as { expert_count?: number; expert_used_count?: number };
    assert.equal(llamaMetadata.expert_count, shape.expertCount);
    assert.equal(llamaMetadata.expert_used_count, shape.expertUsedCount);
  });
  assert.equal(generated.length, 5);
  assert.ok(generated.every((token) => Number.isInteger(token) && token >= 0 && token < shape.vocabSize));
});

test("a dense Q4_0 model keeps its output at Q8_0, loads and completes text", async () => {
  const path = await synthesize(
    "dense-q4_0.gguf",
    "--vocab",
    "512",
    "--dim",
    "128",
    "--layers",
    "2",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--ffn",
    "256",
    "--type",
    "q4_0",
    "--seed",
    "4",
  );
  const tensors = tensorsOf(await readGgufHeader(path));
  assert.deepEqual(tensors.get("token_embd.weight"), { dims: [128, 512], ggmlType: GGML_TYPE_ID.Q4_0 });
  assert.deepEqual(tensors.get("output.weight"), { dims: [128, 512], ggmlType: GGML_TYPE_ID.Q8_0 });
  assert.deepEqual(tensors.get("blk.1.ffn_down.weight"), { dims: [256, 128], ggmlType: GGML_TYPE_ID.Q4_0 });
  assert.deepEqual(tensors.get("blk.1.ffn_norm.weight"), { dims: [128], ggmlType: GGML_TYPE_ID.F32 });

  const model = await llama.loadModel({ modelPath: path });
  try {
    const context = await model.createContext({ contextSize: 256, threads: 1 });
    try {
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      const result = await completion.generateCompletionWithMeta("hello", { maxTokens: 5, temperature: 0 });
      assert.ok(["maxTokens", "eogToken", "stopGenerationTrigger"].includes(result.metadata.stopReason));
      assert.equal(typeof result.response, "string");
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
});

test("a qwen2 model with q/k/v biases and tied embeddings loads and generates", async () => {
  const path = await synthesize(
    "qwen2.gguf",
    "--arch",
    "qwen2",
    "--tied",
    "--vocab",
    "1024",
    "--dim",
    "64",
    "--layers",
    "2",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--ffn",
    "128",
    "--type",
    "q8_0",
  );
  const tensors = tensorsOf(await readGgufHeader(path));
  assert.equal(tensors.has("output.weight"), false);
  assert.deepEqual(tensors.get("blk.0.attn_k.bias"), { dims: [32], ggmlType: GGML_TYPE_ID.F32 });
  const generated = await loadAndGenerate(path, (model) => {
    assert.equal(model.fileInfo.metadata.general.architecture, "qwen2");
  });
  assert.equal(generated.length, 5);
});

test("a real-sized 128k vocabulary still tokenizes any text, falls back to bytes and generates", async () => {
  const vocabSize = findModelShape("llama-3.1-8b")!.vocabSize;
  const path = await synthesize(
    "big-vocab.gguf",
    "--vocab",
    String(vocabSize),
    "--dim",
    "64",
    "--layers",
    "1",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--ffn",
    "64",
    "--type",
    "q8_0",
  );
  const generated = await loadAndGenerate(path, (model) => {
    assert.equal(model.fileInfo.metadata.tokenizer.ggml.tokens.length, vocabSize);
    for (const text of ["hello world", "Hello, World!\nthe number 42", "é€ 😀", "tok123 and more"])
      assert.equal(model.detokenize(model.tokenize(text)), text);
    const vocabulary = model.fileInfo.metadata.tokenizer.ggml.tokens;
    assert.deepEqual(
      model.tokenize("hello world").map((token) => vocabulary[token]),
      ["\u2581hello", "\u2581world"],
    );
    // "€" is UTF-8 E2 82 AC; byte tokens <0x00>..<0xFF> occupy ids 3..258.
    assert.deepEqual(
      model
        .tokenize("€")
        .filter((token) => token >= 3 && token <= 258)
        .map((token) => token - 3),
      [0xe2, 0x82, 0xac],
    );
    assert.deepEqual(
      model.tokenize("<|im_start|>user<|im_end|>", true).filter((token) => token >= vocabSize - 2),
      [vocabSize - 2, vocabSize - 1],
    );
  });
  assert.ok(generated.every((token) => token >= 0 && token < vocabSize));
});
