/**
 * A preemption releases a request's sequence and later resumes it on a new one, with a new native sampler. A
 * sampled request must then go on drawing what it would have drawn uninterrupted: each token's random stream is
 * seeded by the request's seed and the token's output position. Slabs keep every sequence's cells in position
 * order, so the logits before and after the interruption agree and only the sampler can make a difference.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { SamplingParams, TokenId } from "../../src/engine/engine.ts";
import { LlamaEngine } from "../../src/engine/llama-engine.ts";
import { STORIES_MODEL } from "../helpers/model-server.ts";

const NUM_GENERATED = 60;
const INTERRUPT_AT = 20;

let engine: LlamaEngine;

before(async () => {
  engine = await LlamaEngine.load({
    modelPath: STORIES_MODEL,
    threads: 1,
    numSequences: 2,
    contextSize: 256,
    batchSize: 256,
    gpu: "false",
    kvLayout: "slabs",
  });
});

after(async () => {
  await engine?.dispose();
});

function sampling(seed: number): SamplingParams {
  return {
    temperature: 1,
    topP: 1,
    topK: 0,
    minP: 0,
    presencePenalty: 0,
    frequencyPenalty: 0,
    seed,
    topLogprobs: null,
  };
}

/** Tokens sampled after `prompt`; with `interruptAt`, the sequence is dropped there and recomputed on a fresh one. */
async function generate(prompt: readonly TokenId[], seed: number, interruptAt: number | null): Promise<TokenId[]> {
  let sequenceId = engine.acquireSequence(sampling(seed));
  const output: TokenId[] = [];
  let pending: TokenId[] = [...prompt];
  let position = 0;
  while (output.length < NUM_GENERATED) {
    assert.ok(sequenceId !== null);
    if (output.length === interruptAt) {
      engine.releaseSequence(sequenceId);
      sequenceId = engine.acquireSequence(sampling(seed), output);
      assert.ok(sequenceId !== null);
      pending = [...prompt, ...output];
      position = 0;
    }
    const [result] = await engine.step([{ sequenceId, startPos: position, tokens: pending, shouldSample: true }]);
    assert.ok(result?.token != null);
    position += pending.length;
    pending = [result.token];
    output.push(result.token);
  }
  if (sequenceId !== null) engine.releaseSequence(sequenceId);
  return output;
}

test("a sampled sequence resumed on a new sampler continues its own random draws", async () => {
  const prompt = engine.tokenize("Once upon a time", { addBos: true });
  const seeds = [11, 12, 13, 14, 15, 16, 17, 18];
  const uninterrupted: string[] = [];
  for (const seed of seeds) uninterrupted.push((await generate(prompt, seed, null)).join());
  assert.ok(new Set(uninterrupted).size >= seeds.length - 1, "different seeds draw differently");
  const resumed: string[] = [];
  for (const seed of seeds) resumed.push((await generate(prompt, seed, INTERRUPT_AT)).join());
  // Recomputing the interrupted tokens in one batch may round a logit differently from decoding them one by one;
  // a draw that lands on the boundary it moved is possible, though rare, so one seed may differ.
  const differing = seeds.filter((_, index) => resumed[index] !== uninterrupted[index]);
  assert.ok(differing.length <= 1, `seeds whose output changed on resuming: ${differing.join(", ")}`);
  for (const [index, seed] of seeds.entries()) {
    assert.equal(
      resumed[index]!.split(",").slice(0, INTERRUPT_AT).join(),
      uninterrupted[index]!.split(",").slice(0, INTERRUPT_AT).join(),
      `seed ${seed} before the interruption`,
    );
  }
});
