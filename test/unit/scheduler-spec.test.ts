/**
 * The scheduler with n-gram speculation on the FakeEngine: drafts ride in the target's step, rejected drafts leave
 * the KV cache at once (the fake pool refuses a step that does not continue exactly where the cache ends), and
 * greedy output is what the same requests produce without speculation.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeEngine } from "../../src/engine/fake-engine.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { DraftModel } from "../../src/spec/draft-model.ts";
import { Speculator } from "../../src/spec/speculator.ts";
import { CoreHarness } from "../helpers/core-harness.ts";
import { makeRequest } from "../helpers/requests.ts";

/** A prompt that repeats itself, so prompt lookup has something to propose. */
function repetitive(seed: number): number[] {
  const phrase = Array.from({ length: 5 }, (_, index) => 2 + ((seed * 11 + index * 17) % 90));
  return [...phrase, ...phrase, ...phrase, ...phrase.slice(0, 2)];
}

async function run(
  speculator: Speculator | null,
  numRequests: number,
  temperature = 0,
): Promise<{ outputs: number[][]; scheduler: Scheduler; numSteps: number }> {
  const engine = new FakeEngine({ numSequences: 8, batchSize: 64, kvCacheTokens: 512, contextSize: 128 });
  const scheduler = new Scheduler(engine, {
    maxNumSequences: 4,
    maxNumBatchedTokens: 64,
    maxNumWaiting: 100,
    blockSize: 4,
    speculator,
  });
  const entries = Array.from({ length: numRequests }, (_, index) =>
    makeRequest(`r${index}`, repetitive(index), {
      maxTokens: 30,
      sampling: {
        temperature,
        topP: 1,
        topK: 0,
        minP: 0,
        presencePenalty: 0,
        frequencyPenalty: 0,
        seed: index,
        topLogprobs: null,
      },
    }),
  );
  const core = new CoreHarness(engine, scheduler);
  for (const entry of entries) core.add(entry);
  const numSteps = await core.runUntilIdle();
  for (const { sink } of entries) assert.equal(sink.finished?.finishReason, "length");
  return { outputs: entries.map(({ sink }) => sink.tokens), scheduler, numSteps };
}

test("greedy output with n-gram drafts equals output without, and rejected drafts never stay in the cache", async () => {
  const plain = await run(null, 6);
  const speculative = await run(new Speculator({ maxDraft: 4, minNgram: 1, maxNgram: 3 }), 6);
  assert.deepEqual(speculative.outputs, plain.outputs);
  const stats = speculative.scheduler.specStats();
  assert.ok(stats !== null && stats.numDraftTokens > 0, "drafts were proposed");
  assert.ok(stats.numAcceptedTokens <= stats.numDraftTokens);
  assert.equal(
    stats.acceptedPerPosition.reduce((sum, count) => sum + count, 0),
    stats.numAcceptedTokens,
  );
  assert.equal(speculative.scheduler.kvCacheState().numUsedBlocks, 0);
});

test("sampled output under speculation is reproducible from the seed", async () => {
  const first = await run(new Speculator({ maxDraft: 4, minNgram: 1, maxNgram: 3 }), 4, 0.8);
  const second = await run(new Speculator({ maxDraft: 4, minNgram: 1, maxNgram: 3 }), 4, 0.8);
  assert.deepEqual(first.outputs, second.outputs);
  assert.notDeepEqual(first.outputs[0], first.outputs[1], "different seeds sample differently");
});

test("a draft model twin of the target drafts in batches, has every draft accepted, and gives back its sequences", async () => {
  // A batch of 8 makes the draft's catch-up of 17-token prompts take several steps.
  const draftEngine = new FakeEngine({ numSequences: 4, batchSize: 8, kvCacheTokens: 512, contextSize: 128 });
  const draftModel = new DraftModel(draftEngine, 4);
  const speculator = new Speculator({ maxDraft: 3, minNgram: 1, maxNgram: 3, draftModel, isAdaptive: false });
  const plain = await run(null, 6);
  const drafted = await run(speculator, 6);
  assert.deepEqual(drafted.outputs, plain.outputs);
  const stats = drafted.scheduler.specStats();
  assert.ok(stats !== null && stats.numDraftTokens > 50);
  assert.equal(stats.numAcceptedTokens, stats.numDraftTokens, "the twin agrees on every token");
  assert.ok(drafted.numSteps < plain.numSteps / 2, `${drafted.numSteps} target steps instead of ${plain.numSteps}`);
  assert.ok(
    draftEngine.steps.some((step) => step.length > 1),
    "one draft step carries several requests",
  );
  assert.equal(draftEngine.numAcquiredSequences, 0, "every draft sequence was released");
  assert.equal(draftEngine.numUsedCells, 0);
  assert.equal(draftModel.numUsedBlocks, 0, "and every block of the draft pool");
});

test("a draft pool too small for some requests drafts for those that fit and never overflows", async () => {
  // 48 cells: room for two of the requests' draft sequences at a time; the FakeEngine fails a step with no free cell.
  const draftEngine = new FakeEngine({ numSequences: 4, batchSize: 64, kvCacheTokens: 48, contextSize: 128 });
  const draftModel = new DraftModel(draftEngine, 4);
  const plain = await run(null, 6);
  const drafted = await run(
    new Speculator({ maxDraft: 3, minNgram: 1, maxNgram: 3, draftModel, isAdaptive: false }),
    6,
  );
  assert.deepEqual(drafted.outputs, plain.outputs);
  const stats = drafted.scheduler.specStats();
  assert.ok(stats !== null && stats.numDraftTokens > 0, "some requests drafted");
  assert.equal(stats.numDraftFailures, 0, "no draft step ran out of cells");
  assert.equal(draftModel.numUsedBlocks, 0);
});

test("a constrained request samples natively in steps without drafts, verifies drafts in TypeScript, and hands the engine every verified token", async () => {
  const build = (speculator: Speculator | null) => {
    const engine = new FakeEngine({ numSequences: 2, batchSize: 64, kvCacheTokens: 256, contextSize: 128 });
    const scheduler = new Scheduler(engine, {
      maxNumSequences: 1,
      maxNumBatchedTokens: 64,
      maxNumWaiting: 10,
      blockSize: 4,
      speculator,
    });
    const entry = makeRequest("constrained", repetitive(3), {
      maxTokens: 30,
      sampling: {
        temperature: 0,
        topP: 1,
        topK: 0,
        minP: 0,
        presencePenalty: 0,
        frequencyPenalty: 0,
        seed: 1,
        topLogprobs: null,
        grammar: { gbnf: "root ::= [ -~]*\n" },
      },
    });
    const core = new CoreHarness(engine, scheduler);
    core.add(entry);
    return { engine, core, entry };
  };
  const plain = build(null);
  await plain.core.runUntilIdle();
  const speculative = build(new Speculator({ maxDraft: 4, minNgram: 1, maxNgram: 3, isAdaptive: false }));
  await speculative.core.runUntilIdle();
  assert.deepEqual(speculative.entry.sink.tokens, plain.entry.sink.tokens);
  const decodeItems = speculative.engine.steps.flat().filter((item) => item.shouldSample && item.startPos > 0);
  const withDrafts = decodeItems.filter((item) => (item.returnLogits ?? 0) > 1);
  const native = decodeItems.filter((item) => item.returnLogits === undefined);
  assert.ok(withDrafts.length > 0, "drafts were verified");
  assert.ok(native.length > 0, "steps without drafts sampled natively");
  assert.ok(
    decodeItems.every((item) => item.returnLogits === undefined || item.returnLogits > 1),
    "no step verifies in TypeScript without drafts",
  );
  // Verified tokens reach the engine in output order; the last verification may run past max_tokens.
  const accepted = [...speculative.engine.acceptedTokens.values()].flat();
  const output = speculative.entry.sink.tokens;
  let matched = 0;
  for (const token of output) if (token === accepted[matched]) matched += 1;
  assert.ok(accepted.length > 0 && matched >= accepted.length - 5, `${matched} of ${accepted.length} in order`);
});
