/**
 * A draft derived from stories260K (5 blocks) by keeping 2 loads in llama.cpp, tokenizes exactly like its source
 * and generates. It also prints how often the draft's greedy next token is the target's, the number that bounds
 * what speculative decoding with this draft can gain.
 */

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel } from "node-llama-cpp";
import { deriveDraftModel } from "../../src/gguf/derive-draft.ts";
import { ggmlTensorBytes, ggmlTypeInfo } from "../../src/gguf/ggml-types.ts";
import { readGgufHeader } from "../../src/gguf/gguf-reader.ts";
import { argmaxAfterEachPrefix, greedyContinuation, greedyTokens } from "../helpers/greedy-tokens.ts";

const SOURCE_PATH = join(import.meta.dirname, "../../../shared/models/stories260K.gguf");
const KEEP_LAYERS = 2;
const NUM_POSITIONS = 100;

let dir: string;
let llama: Llama;
let target: LlamaModel;
let draft: LlamaModel;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-derive-draft-model-"));
  const draftPath = join(dir, "stories260K-l2.gguf");
  await deriveDraftModel(SOURCE_PATH, draftPath, { keepLayers: KEEP_LAYERS });
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
  target = await llama.loadModel({ modelPath: SOURCE_PATH });
  draft = await llama.loadModel({ modelPath: draftPath });
});

after(async () => {
  await draft?.dispose();
  await target?.dispose();
  await llama?.dispose();
  if (dir != null) await rm(dir, { recursive: true, force: true });
});

test("the draft tokenizes every string exactly as its source does", () => {
  assert.equal(draft.vocabularyType, target.vocabularyType);
  assert.deepEqual([draft.tokens.bos, draft.tokens.eos], [target.tokens.bos, target.tokens.eos]);
  assert.equal(draft.fileInfo.metadata.tokenizer.ggml.tokens.length, 512);
  for (const text of ["Once upon a time", "hello world", "The little dog ran to the park.\nLily smiled!", " 123 é"]) {
    const tokens = target.tokenize(text);
    assert.deepEqual(draft.tokenize(text), tokens, text);
    assert.equal(draft.detokenize(tokens), target.detokenize(tokens));
  }
});

test("llama.cpp sees two blocks in the draft and loads exactly three blocks' bytes less than the source", async () => {
  assert.equal(target.fileInfo.architectureMetadata.block_count, 5);
  assert.equal(draft.fileInfo.architectureMetadata.block_count, KEEP_LAYERS);
  assert.equal(draft.fileInsights.totalLayers, KEEP_LAYERS + 1); // node-llama-cpp counts the output layer too
  const header = await readGgufHeader(SOURCE_PATH);
  const droppedBytes = header.tensors
    .filter((tensor) => /^blk\.[234]\./.test(tensor.name))
    .reduce((sum, tensor) => sum + ggmlTensorBytes(ggmlTypeInfo(tensor.ggmlType), tensor.dims), 0);
  // llama_model_size sums the weights llama.cpp actually loaded.
  assert.equal(target.size - draft.size, droppedBytes);
});

test("the draft generates greedy tokens from its source's vocabulary", async () => {
  const tokens = await greedyTokens(draft);
  assert.equal(tokens.length, 5);
  for (const token of tokens) assert.ok(token >= 0 && token < 512);
});

test("reports how often the draft's greedy next token matches the target's along the target's own continuation", async (t) => {
  const prompt = [target.tokens.bos!, ...target.tokenize("Once upon a time")];
  const { tokens: continuation } = await greedyContinuation(target, prompt, NUM_POSITIONS);
  // Position i predicts token i + 1: from the end of the prompt to the last token but one of the continuation.
  const tokens = [...prompt, ...continuation].slice(0, -1);
  const targetNext = await argmaxAfterEachPrefix(target, tokens, prompt.length - 1);
  const draftNext = await argmaxAfterEachPrefix(draft, tokens, prompt.length - 1);
  assert.equal(targetNext.length, NUM_POSITIONS);
  // The batched evaluation must reproduce the target's token-by-token choices, or the comparison measures noise.
  assert.deepEqual(targetNext, continuation);
  const agreed = draftNext.filter((token, index) => token === targetNext[index]).length;
  t.diagnostic(
    `stories260K: the ${KEEP_LAYERS}-block draft's greedy next token equals the 5-block target's at ` +
      `${agreed} of ${NUM_POSITIONS} positions (${((agreed / NUM_POSITIONS) * 100).toFixed(0)}%) of the target's ` +
      `greedy continuation of "Once upon a time": ${JSON.stringify(target.detokenize(continuation).slice(0, 80))}…`,
  );
});
