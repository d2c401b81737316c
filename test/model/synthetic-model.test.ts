import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { getLlama, type Llama, LlamaCompletion, LlamaLogLevel, type LlamaModel } from "node-llama-cpp";
import { writeSyntheticLlama } from "../../src/gguf/synthetic-model.ts";
import { greedyTokens } from "../helpers/greedy-tokens.ts";

let dir: string;
let llama: Llama;
let model: LlamaModel;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-synthetic-"));
  const modelPath = join(dir, "synthetic.gguf");
  await writeSyntheticLlama(modelPath, {
    vocabSize: 1024,
    embeddingLength: 64,
    blockCount: 2,
    feedForwardLength: 128,
    seed: 1,
  });
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
  model = await llama.loadModel({ modelPath });
});

after(async () => {
  await model?.dispose();
  await llama?.dispose();
  if (dir != null) await rm(dir, { recursive: true, force: true });
});

test("metadata and file insights describe the synthetic shape", () => {
  const { metadata } = model.fileInfo;
  assert.equal(metadata.general.architecture, "llama");
  assert.match(metadata.general.name ?? "", /^pagoda-synthetic-/);
  assert.equal(model.fileInsights.trainContextSize, 2048);
  assert.equal(model.fileInsights.embeddingVectorSize, 64);
  assert.equal(model.fileInsights.totalLayers, 3);
  assert.equal(model.fileInsights.isSupportedByLlamaCpp, true);
  assert.equal(model.tokens.bos, 1);
  assert.equal(model.tokens.eos, 2);
  assert.equal(model.tokens.eot, 1023, "<|im_end|> is the end-of-turn token");
  assert.equal(model.tokens.nl, 3 + 0x0a, "newline resolves to its byte token");
  assert.equal(model.tokens.shouldPrependBosToken, true);
});

test("tokenizer round-trips plain text and falls back to bytes", () => {
  for (const text of ["hello world", "é€", "Hello, World!\nthe number 42"]) {
    const tokens = model.tokenize(text);
    assert.equal(model.detokenize(tokens), text);
  }
  const vocabulary = model.fileInfo.metadata.tokenizer.ggml.tokens;
  assert.deepEqual(
    model.tokenize("hello world").map((token) => vocabulary[token]),
    ["\u2581hello", "\u2581world"],
  );
  // "é" is UTF-8 C3 A9 and "€" is E2 82 AC; byte tokens <0x00>..<0xFF> occupy ids 3..258.
  const euroTokens = model.tokenize("é€").filter((token) => token >= 3 && token <= 258);
  assert.deepEqual(
    euroTokens.map((token) => token - 3),
    [0xc3, 0xa9, 0xe2, 0x82, 0xac],
  );
  assert.deepEqual(
    model.tokenize("<|im_start|>user<|im_end|>", true).filter((token) => token >= 1022),
    [1022, 1023],
  );
});

test("generates deterministically with a greedy sampler", async () => {
  const run = (): Promise<number[]> => greedyTokens(model);
  const first = await run();
  assert.equal(first.length, 5);
  assert.ok(first.every((token) => Number.isInteger(token) && token >= 0 && token < 1024));
  assert.deepEqual(await run(), first);
});

test("completes text through LlamaCompletion", async () => {
  const context = await model.createContext({ contextSize: 256, threads: 1 });
  try {
    const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
    const result = await completion.generateCompletionWithMeta("hello", { maxTokens: 5, temperature: 0 });
    assert.ok(["maxTokens", "eogToken", "stopGenerationTrigger"].includes(result.metadata.stopReason));
    assert.equal(typeof result.response, "string");
  } finally {
    await context.dispose();
  }
});
