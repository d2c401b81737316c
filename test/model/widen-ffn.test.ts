/**
 * Targets derived from stories260K by widening its feed-forward load in llama.cpp and tokenize exactly like it.
 * With perturbation 0 the extra units add exact zeros, so greedy decoding matches the source's; with a small
 * perturbation it prints how often the source (as a draft) picks the target's greedy token, and both models'
 * time per token, the two numbers a speculative-decoding benchmark on this pair depends on.
 */

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";
import { widenFeedForward } from "../../src/gguf/widen-ffn.ts";
import { argmaxAfterEachPrefix, greedyContinuation } from "../helpers/greedy-tokens.ts";

const SOURCE_PATH = join(import.meta.dirname, "../../../shared/models/stories260K.gguf");
const SOURCE_FEED_FORWARD = 172;
const PROMPT = "Once upon a time";
const NUM_EXACT_TOKENS = 48;
const NUM_POSITIONS = 100;
/** Widening factor and perturbation of the targets whose agreement with the source is checked. */
const PERTURBED = [
  { factor: 8, perturbation: 0.02 },
  { factor: 16, perturbation: 0.05 },
] as const;

let dir: string;
let llama: Llama;
let source: LlamaModel;
const loaded: LlamaModel[] = [];

async function loadWidened(factor: number, perturbation: number): Promise<LlamaModel> {
  const path = join(dir, `stories260K-ffn${factor}x-p${perturbation}.gguf`);
  const result = await widenFeedForward(SOURCE_PATH, path, {
    feedForwardLength: SOURCE_FEED_FORWARD * factor,
    perturbation,
    seed: 1,
  });
  assert.equal(result.sourceFeedForward, SOURCE_FEED_FORWARD);
  const model = await llama.loadModel({ modelPath: path });
  loaded.push(model);
  return model;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-widen-ffn-model-"));
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
  source = await llama.loadModel({ modelPath: SOURCE_PATH });
});

after(async () => {
  for (const model of loaded) await model.dispose();
  await source?.dispose();
  await llama?.dispose();
  if (dir != null) await rm(dir, { recursive: true, force: true });
});

function promptOf(model: LlamaModel): Token[] {
  return [model.tokens.bos!, ...model.tokenize(PROMPT)];
}

test("with perturbation 0 the 8x-wide target loads, tokenizes like its source and continues greedily exactly as it does", async () => {
  const target = await loadWidened(8, 0);
  assert.equal(target.fileInfo.architectureMetadata.feed_forward_length, SOURCE_FEED_FORWARD * 8);
  assert.ok(target.size > source.size * 4, `${target.size} bytes of weights against the source's ${source.size}`);
  for (const text of [PROMPT, "hello world", "The little dog ran to the park.\nLily smiled!", " 123 é"])
    assert.deepEqual(target.tokenize(text), source.tokenize(text), text);
  const expected = await greedyContinuation(source, promptOf(source), NUM_EXACT_TOKENS);
  const actual = await greedyContinuation(target, promptOf(target), NUM_EXACT_TOKENS);
  assert.deepEqual(actual.tokens, expected.tokens);
});

for (const { factor, perturbation } of PERTURBED) {
  test(
    `a ${factor}x-wide target at perturbation ${perturbation} stays its source's kin: batched argmax reproduces its ` +
      "greedy continuation and the source's greedy choice agrees at most positions",
    async (t) => {
      const target = await loadWidened(factor, perturbation);
      const prompt = promptOf(target);
      const { tokens: continuation } = await greedyContinuation(target, prompt, NUM_POSITIONS);
      // Position i predicts token i + 1: from the end of the prompt to the last token but one of the continuation.
      const tokens = [...prompt, ...continuation].slice(0, -1);
      const targetNext = await argmaxAfterEachPrefix(target, tokens, prompt.length - 1);
      const sourceNext = await argmaxAfterEachPrefix(source, tokens, prompt.length - 1);
      // The batched evaluation must reproduce the target's token-by-token choices, or the agreement measures noise.
      assert.deepEqual(targetNext, continuation);
      const agreed = sourceNext.filter((token, index) => token === targetNext[index]).length;
      // A perturbation this small keeps the pair a useful draft/target pair; an unrelated model agrees rarely.
      assert.ok(agreed >= NUM_POSITIONS / 2, `the source agrees at ${agreed} of ${NUM_POSITIONS} positions`);
      t.diagnostic(
        `stories260K widened to ffn ${SOURCE_FEED_FORWARD * factor} (${factor}x), perturbation ${perturbation}: ` +
          `the source's greedy next token equals the target's at ${agreed} of ${NUM_POSITIONS} positions ` +
          "(time per token: npm run bench:spec -- --widen-ffn)",
      );
    },
  );
}
