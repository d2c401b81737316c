/**
 * Prefix caching on slabs (`canCopyCells`): each sequence holds cells of its own, so a cached prefix is copied into
 * the new sequence whole from one source, a running sequence or a saved prefix, never forked block by block from
 * several. The FakeEngine in slab mode throws on any other copy, as `LlamaSequences` does.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeEngine } from "../../src/engine/fake-engine.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { CoreHarness } from "../helpers/core-harness.ts";
import { makeRequest, spreadTokens } from "../helpers/requests.ts";

const BLOCK = 4;
const CONTEXT = 64;

interface Setup {
  readonly engine: FakeEngine;
  readonly scheduler: Scheduler;
  readonly core: CoreHarness;
}

function setup(numSequences: number, kvLayout: "shared" | "slabs" = "slabs", maxNumBatchedTokens = 64): Setup {
  const engine = new FakeEngine({ batchSize: 64, numSequences, contextSize: CONTEXT, kvLayout });
  const scheduler = new Scheduler(engine, {
    maxNumSequences: numSequences,
    maxNumBatchedTokens,
    maxNumWaiting: 1000,
    blockSize: BLOCK,
  });
  return { engine, scheduler, core: new CoreHarness(engine, scheduler) };
}

async function runUntilIdle({ scheduler, core }: Setup): Promise<void> {
  for (let step = 0; step < 10_000 && scheduler.hasWork(); step++) await core.step();
  assert.equal(scheduler.hasWork(), false, "the scheduler drained");
}

async function aloneOutput(prompt: readonly number[], maxTokens: number): Promise<number[]> {
  const alone = setup(1, "slabs");
  const entry = makeRequest("alone", prompt, { maxTokens });
  alone.core.add(entry);
  await runUntilIdle(alone);
  return entry.sink.tokens;
}

test("slabs cache prefixes: the first hit restores the saved copy, the others copy it from that sequence", async () => {
  const slabs = setup(8);
  assert.equal(slabs.scheduler.isPrefixCaching, true);
  const prefix = spreadTokens(14, 3);
  const first = makeRequest("first", [...prefix, 50], { maxTokens: 3 });
  slabs.core.add(first);
  await runUntilIdle(slabs);
  assert.equal(slabs.engine.numSaves, 1, "the finished request's 3 full blocks are saved to host memory");

  const stepsBefore = slabs.engine.steps.length;
  const others = [60, 61, 62].map((last, index) => makeRequest(`other${index}`, [...prefix, last], { maxTokens: 3 }));
  for (const entry of others) slabs.core.add(entry);
  await runUntilIdle(slabs);
  assert.deepEqual(
    slabs.engine.steps[stepsBefore]?.map((item) => [item.startPos, item.tokens.length]),
    [
      [12, 3],
      [12, 3],
      [12, 3],
    ],
    "3 blocks (12 tokens) came from the cache, 3 prefilled each",
  );
  assert.equal(slabs.engine.numRestores, 1);
  assert.equal(slabs.engine.numCopies, 2, "a running sequence is preferred to a saved copy of the same blocks");
  for (const { request, sink } of others) {
    assert.equal(sink.finished?.numCachedTokens, 12);
    assert.deepEqual(sink.tokens, await aloneOutput(request.promptTokens, 3));
  }
});

test("on slabs a user's next turn restores its own saved turn whole, system prompt included", async () => {
  const slabs = setup(8);
  const system = spreadTokens(16, 3);
  const other = makeRequest("other", [...system, ...spreadTokens(4, 70)], { maxTokens: 40 });
  slabs.core.add(other);
  await slabs.core.step();
  const turn1 = makeRequest("turn1", [...system, ...spreadTokens(8, 50)], { maxTokens: 4 });
  slabs.core.add(turn1);
  while (turn1.sink.finished === null) await slabs.core.step();
  assert.equal(slabs.engine.numCopies, 1, "turn 1 copied the system prompt from 'other'");
  assert.equal(slabs.engine.numSaves, 1);

  const prompt2 = [...turn1.request.allTokens, ...spreadTokens(5, 60)];
  const turn2 = makeRequest("turn2", prompt2, { maxTokens: 4 });
  slabs.core.add(turn2);
  await runUntilIdle(slabs);
  // 6 full blocks cached: the saved turn covers all 6, 'other' only the 4 of the system prompt.
  assert.equal(turn2.sink.finished?.numCachedTokens, 24);
  assert.equal(slabs.engine.numRestores, 1);
  assert.equal(slabs.engine.numCopies, 1, "nothing was copied from 'other' this time");
  assert.deepEqual(turn2.sink.tokens, await aloneOutput(prompt2, 4), "and the output is as alone");
});

test("requests arriving with one long prefix on slabs wait for the first to compute it, then copy it", async () => {
  const slabs = setup(4, "slabs", 16);
  const prefix = spreadTokens(40, 3);
  const requests = [0, 1, 2, 3].map((index) =>
    makeRequest(`r${index}`, [...prefix, ...spreadTokens(3, 40 + index * 11)], { maxTokens: 4 }),
  );
  for (const entry of requests) slabs.core.add(entry);
  await runUntilIdle(slabs);
  const prompted = slabs.engine.steps.flat().reduce((sum, item) => sum + item.tokens.length, 0) - 4 * 3;
  assert.equal(prompted, 40 + 4 * 3, "the prefix is computed once, then each request's own 3 tokens");
  assert.equal(slabs.engine.numCopies, 3);
  for (const { request, sink } of requests)
    assert.deepEqual(sink.tokens, await aloneOutput(request.promptTokens, 4), `${request.id} as alone`);
});

test("random requests, shared prefixes and aborts on slabs: outputs as on the shared pool, and everything freed", async () => {
  const run = async (kvLayout: "shared" | "slabs") => {
    let seed = 777;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const engine = setup(6, kvLayout, 32);
    const prefixes = [spreadTokens(9, 1), spreadTokens(17, 2), spreadTokens(5, 3)];
    const all: ReturnType<typeof makeRequest>[] = [];
    for (let step = 0; step < 400; step++) {
      if (random() < 0.3) {
        const prefix = prefixes[Math.floor(random() * prefixes.length)]!;
        const prompt = [
          ...prefix.slice(0, 1 + Math.floor(random() * prefix.length)),
          ...spreadTokens(Math.floor(random() * 10), step),
        ];
        const entry = makeRequest(`q${step}`, prompt, { maxTokens: 1 + Math.floor(random() * 20) });
        engine.core.add(entry);
        all.push(entry);
      }
      if (random() < 0.05 && all.length > 0) engine.core.abort(all[Math.floor(random() * all.length)]!.request.id);
      await engine.core.step();
    }
    await runUntilIdle(engine);
    return { engine, all };
  };
  const slabs = await run("slabs");
  const shared = await run("shared");
  assert.ok(slabs.all.length > 80);
  assert.ok(slabs.all.every(({ sink }) => sink.finished !== null && sink.finished.finishReason !== "error"));
  for (const [index, { sink }] of slabs.all.entries()) assert.deepEqual(sink.tokens, shared.all[index]?.sink.tokens);
  const state = slabs.engine.scheduler.kvCacheState();
  assert.ok(state.prefixHitTokens > 0);
  assert.ok(slabs.engine.engine.numCopies > 0 && slabs.engine.engine.numRestores > 0);
  assert.equal(state.numUsedBlocks, 0);
  assert.equal(slabs.engine.engine.numAcquiredSequences, 0);
  assert.equal(slabs.engine.engine.numUsedCells, 0);
});

test("KV usage on slabs counts a copied prefix once per sequence holding it, as its cells are", async () => {
  const usageWhileRunning = async (kvLayout: "shared" | "slabs"): Promise<number> => {
    const engine = setup(4, kvLayout);
    const prefix = spreadTokens(16, 3);
    engine.core.add(makeRequest("first", [...prefix, 50], { maxTokens: 8 }));
    await engine.core.step();
    for (const last of [60, 61, 62]) engine.core.add(makeRequest(`other${last}`, [...prefix, last], { maxTokens: 8 }));
    await engine.core.step();
    return engine.scheduler.kvCacheState().usage;
  };
  const numBlocks = (4 * CONTEXT) / BLOCK;
  // Each request holds its 4 prompt blocks and 1 more for the tokens past them.
  assert.equal(await usageWhileRunning("slabs"), (4 * 5) / numBlocks);
  assert.equal(await usageWhileRunning("shared"), (4 + 4 * 1) / numBlocks, "the pool holds the prefix once");
});
