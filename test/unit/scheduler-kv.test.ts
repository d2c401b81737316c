/**
 * The scheduler on the paged KV pool, with the FakeEngine's emulated llama.cpp pool (which fails a step that finds
 * no free cell, as llama.cpp does): preemption instead of failure, prefix forks, parking and eviction, priorities,
 * queue deadlines, and a randomized run that must end with every block and cell free.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeEngine, type FakeEngineOptions } from "../../src/engine/fake-engine.ts";
import { QueueTimeoutError } from "../../src/scheduler/request.ts";
import { Scheduler, type SchedulerOptions } from "../../src/scheduler/scheduler.ts";
import { CoreHarness } from "../helpers/core-harness.ts";
import { makeRequest, spreadTokens } from "../helpers/requests.ts";

const BLOCK = 4;

interface Setup {
  readonly engine: FakeEngine;
  readonly scheduler: Scheduler;
  readonly core: CoreHarness;
}

function setup(engineOptions: FakeEngineOptions, schedulerOptions: Partial<SchedulerOptions> = {}): Setup {
  const engine = new FakeEngine({ batchSize: 64, ...engineOptions });
  const scheduler = new Scheduler(engine, {
    maxNumSequences: 4,
    maxNumBatchedTokens: 64,
    maxNumWaiting: 100,
    blockSize: BLOCK,
    ...schedulerOptions,
  });
  return { engine, scheduler, core: new CoreHarness(engine, scheduler) };
}

/** One step; every step also proves the accounting: llama.cpp's used cells never exceed the blocks in use. */
async function runStep({ engine, scheduler, core }: Setup): Promise<void> {
  if ((await core.step()) === null) return;
  const state = scheduler.kvCacheState();
  assert.ok(
    engine.numUsedCells <= (state.numUsedBlocks + state.numCachedBlocks) * BLOCK,
    "cells beyond the blocks in use",
  );
}

async function runUntilIdle(setup: Setup, maxSteps = 10_000): Promise<void> {
  for (let step = 0; step < maxSteps && setup.scheduler.hasWork(); step++) await runStep(setup);
  assert.equal(setup.scheduler.hasWork(), false, "the scheduler drained");
}

async function aloneOutput(prompt: readonly number[], maxTokens: number): Promise<number[]> {
  const alone = setup({ numSequences: 1, kvCacheTokens: 1024, contextSize: 1024 }, { maxNumSequences: 1 });
  const entry = makeRequest("alone", prompt, { maxTokens });
  alone.core.add(entry);
  await runUntilIdle(alone);
  return entry.sink.tokens;
}

test("a pool smaller than the running requests' needs preempts and resumes them, and every output equals its run alone", async () => {
  // 6 blocks of 4 cells; each request needs ceil((6 + 10) / 4) = 4 blocks, 16 in all.
  const pool = setup({ numSequences: 8, kvCacheTokens: 24, contextSize: 64 });
  const requests = [0, 1, 2, 3].map((index) =>
    makeRequest(`r${index}`, spreadTokens(6, index * 13), { maxTokens: 10 }),
  );
  for (const entry of requests) pool.core.add(entry);
  await runUntilIdle(pool);

  assert.ok(pool.scheduler.kvCacheState().numPreemptions > 0, "the pool ran dry and someone was preempted");
  for (const [index, { sink }] of requests.entries()) {
    assert.equal(sink.finished?.finishReason, "length", `r${index} finished normally`);
    assert.deepEqual(
      sink.tokens,
      await aloneOutput(spreadTokens(6, index * 13), 10),
      `r${index} is unchanged by preemption`,
    );
  }
  const state = pool.scheduler.kvCacheState();
  assert.equal(state.numUsedBlocks, 0, "no block is held by a request");
  assert.equal(pool.engine.numAcquiredSequences, 0);
});

test("requests sharing a prefix fork its cells and prefill only the rest; usage reports the cached tokens", async () => {
  const shared = setup({ numSequences: 8, kvCacheTokens: 256, contextSize: 128 });
  const prefix = spreadTokens(14, 3);
  const first = makeRequest("first", [...prefix, 50], { maxTokens: 3 });
  shared.core.add(first);
  await runUntilIdle(shared);
  assert.equal(first.sink.finished?.numCachedTokens, 0);
  assert.equal(shared.engine.numSaves, 1, "the finished request's 3 full blocks are saved to host memory");
  assert.equal(shared.engine.numUsedCells, 0, "and leave the pool");
  assert.equal(shared.scheduler.kvCacheState().numSavedPrefixes, 1);

  const stepsBefore = shared.engine.steps.length;
  const others = [60, 61, 62].map((last, index) => makeRequest(`other${index}`, [...prefix, last], { maxTokens: 3 }));
  for (const entry of others) shared.core.add(entry);
  await runUntilIdle(shared);

  const firstStep = shared.engine.steps[stepsBefore] ?? [];
  assert.deepEqual(
    firstStep.map((item) => [item.startPos, item.tokens.length]),
    [
      [12, 3],
      [12, 3],
      [12, 3],
    ],
    "3 blocks (12 tokens) forked, 3 prefilled each",
  );
  assert.equal(shared.engine.numRestores, 1, "the first restores the saved cells, the others fork them from it");
  for (const { request, sink } of others) {
    assert.equal(sink.finished?.numCachedTokens, 12);
    assert.deepEqual(sink.tokens, await aloneOutput(request.promptTokens, 3));
  }
  const state = shared.scheduler.kvCacheState();
  assert.equal(state.prefixQueriedTokens, 4 * 15);
  assert.equal(state.prefixHitTokens, 3 * 12);
});

test("requests that arrive with one long prefix wait while the first computes it, then fork it: computed once, held once", async () => {
  const run = async (prefixLength: number): Promise<{ prompted: number; peakCells: number; pool: Setup }> => {
    // 16 tokens a step, so the shared prefix takes several steps to compute.
    const pool = setup({ numSequences: 8, kvCacheTokens: 256, contextSize: 128 }, { maxNumBatchedTokens: 16 });
    const prefix = spreadTokens(prefixLength, 3);
    const requests = [0, 1, 2, 3].map((index) =>
      makeRequest(`r${index}`, [...prefix, ...spreadTokens(3, 40 + index * 11)], { maxTokens: 4 }),
    );
    for (const entry of requests) pool.core.add(entry);
    let peakCells = 0;
    while (pool.scheduler.hasWork()) {
      await runStep(pool);
      peakCells = Math.max(peakCells, pool.engine.numUsedCells);
    }
    for (const { request, sink } of requests) {
      assert.equal(sink.finished?.finishReason, "length");
      assert.deepEqual(sink.tokens, await aloneOutput(request.promptTokens, 4), `${request.id} as alone`);
    }
    const prompted = pool.engine.steps.flat().reduce((sum, item) => sum + item.tokens.length, 0) - 4 * 3;
    return { prompted, peakCells, pool };
  };
  // 40 shared tokens = 10 blocks of 4: the first request computes them, the others fork all 10 blocks.
  const shared = await run(40);
  assert.equal(shared.prompted, 40 + 4 * 3, "the prefix is computed once, then each request's own 3 tokens");
  assert.ok(shared.peakCells <= 40 + 4 * 8, `the pool holds the prefix once (peak ${shared.peakCells} cells)`);
  // 5 shared tokens (one full block): below the threshold, nobody waits; two prompts fill the first step.
  const short = await run(5);
  assert.deepEqual(
    short.pool.engine.steps[0]?.map((item) => [item.startPos, item.tokens.length]),
    [
      [0, 8],
      [0, 8],
    ],
    "the second request computes the shared block beside the first",
  );
});

test("a user's next turn forks the system prompt from a running request and restores only its own earlier turn", async () => {
  const pool = setup({ numSequences: 8, kvCacheTokens: 256, contextSize: 128 });
  const system = spreadTokens(16, 3);
  const other = makeRequest("other", [...system, ...spreadTokens(4, 70)], { maxTokens: 40 });
  pool.core.add(other);
  await runStep(pool);
  const turn1 = makeRequest("turn1", [...system, ...spreadTokens(8, 50)], { maxTokens: 4 });
  pool.core.add(turn1);
  while (turn1.sink.finished === null) await runStep(pool);
  // 27 of turn 1's 28 tokens are in the KV cache: 6 full blocks, 4 of them the system prompt "other" still holds.
  assert.equal(pool.engine.numSaves, 1, "turn 1's blocks are saved, since 2 of them have no other holder");

  const prompt2 = [...turn1.request.allTokens, ...spreadTokens(5, 60)];
  const turn2 = makeRequest("turn2", prompt2, { maxTokens: 4 });
  pool.core.add(turn2);
  const stepsBefore = pool.engine.steps.length;
  await runStep(pool);
  const item = pool.engine.steps[stepsBefore]?.find((entry) => entry.tokens.length > 1);
  assert.deepEqual([item?.startPos, item?.tokens.length], [24, prompt2.length - 24], "6 blocks came from the cache");
  assert.equal(pool.engine.numRestores, 1, "blocks 4 and 5 were restored, blocks 0 to 3 forked from 'other'");
  const usedCells = pool.engine.numUsedCells;
  assert.ok(
    usedCells <= other.request.numTokens + prompt2.length - 16,
    `the system prompt is held once (${usedCells})`,
  );
  await runUntilIdle(pool);
  assert.equal(turn2.sink.finished?.numCachedTokens, 24);
  assert.deepEqual(turn2.sink.tokens, await aloneOutput(prompt2, 4), "and the output is as alone");
});

test("a saved prefix is evicted block by block when the pool needs room, tail first, and a hit restores what is left", async () => {
  const pool = setup({ numSequences: 4, kvCacheTokens: 32, contextSize: 32 }, { maxNumSequences: 2 });
  const cached = makeRequest("cached", spreadTokens(13, 5), { maxTokens: 1 });
  pool.core.add(cached);
  await runUntilIdle(pool);
  assert.equal(pool.engine.numUsedCells, 0, "the pool holds nothing: 3 full blocks are saved, the partial one dropped");
  assert.equal(pool.scheduler.kvCacheState().numCachedBlocks, 3);
  assert.equal(pool.scheduler.kvCacheState().savedPrefixBytes, 12 * 4);

  // 7 blocks for a stranger: the 5 never-cached free blocks first, then the two newest cached ones.
  const stranger = makeRequest("stranger", spreadTokens(20, 70), { maxTokens: 8 });
  pool.core.add(stranger);
  await runUntilIdle(pool);

  const again = makeRequest("again", spreadTokens(13, 5), { maxTokens: 1 });
  pool.core.add(again);
  await runUntilIdle(pool);
  // The chain's tail (blocks 2 and 1) went first; its head (block 0, 4 tokens) is still a hit.
  assert.equal(again.sink.finished?.numCachedTokens, 4);
  assert.deepEqual(again.sink.tokens, cached.sink.tokens);
  assert.equal(pool.engine.numRestores, 1);
});

test("a more urgent request preempts the least urgent running one when every slot is taken", async () => {
  const pool = setup({ numSequences: 2, kvCacheTokens: 256, contextSize: 128 }, { maxNumSequences: 2 });
  const low = makeRequest("low", spreadTokens(4, 1), { maxTokens: 30, priority: 5 });
  const normal = makeRequest("normal", spreadTokens(4, 2), { maxTokens: 30 });
  pool.core.add(low);
  pool.core.add(normal);
  await runStep(pool);
  const urgent = makeRequest("urgent", spreadTokens(4, 3), { maxTokens: 2, priority: -1 });
  pool.core.add(urgent);
  await runStep(pool);
  assert.equal(low.request.status, "waiting", "the lowest priority yields its slot");
  assert.equal(urgent.request.status, "running");
  assert.equal(normal.request.status, "running");
  await runUntilIdle(pool);
  assert.deepEqual(low.sink.tokens, await aloneOutput(spreadTokens(4, 1), 30), "and resumes unchanged");
  assert.equal(low.request.numPreemptions, 1);
});

test("a request that waits past the queue deadline fails with QueueTimeoutError; preempted ones are exempt", async () => {
  let now = 0;
  const pool = setup(
    { numSequences: 1, kvCacheTokens: 256, contextSize: 128 },
    { maxNumSequences: 1, queueTimeoutMs: 1000, now: () => now },
  );
  const busy = makeRequest("busy", spreadTokens(4), { maxTokens: 50 });
  const late = makeRequest("late", spreadTokens(4), { maxTokens: 1 });
  pool.core.add(busy);
  pool.core.add(late);
  await runStep(pool);
  now = 1001;
  await runStep(pool);
  assert.equal(late.sink.finished?.finishReason, "error");
  assert.ok(late.sink.finished?.error instanceof QueueTimeoutError);
  assert.equal(busy.request.status, "running");
});

test("random requests, lengths, shared prefixes and aborts on a small pool end with every block and cell free", async () => {
  let seed = 12345;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const pool = setup(
    { numSequences: 12, kvCacheTokens: 96, contextSize: 64 },
    { maxNumSequences: 6, maxNumBatchedTokens: 32 },
  );
  const prefixes = [spreadTokens(9, 1), spreadTokens(17, 2), spreadTokens(5, 3)];
  const all: ReturnType<typeof makeRequest>[] = [];
  for (let step = 0; step < 600; step++) {
    if (random() < 0.3) {
      const prefix = prefixes[Math.floor(random() * prefixes.length)]!;
      const prompt = [
        ...prefix.slice(0, 1 + Math.floor(random() * prefix.length)),
        ...spreadTokens(Math.floor(random() * 10), step),
      ];
      const entry = makeRequest(`q${step}`, prompt, {
        maxTokens: 1 + Math.floor(random() * 20),
        priority: random() < 0.2 ? 1 : 0,
      });
      pool.core.add(entry);
      all.push(entry);
    }
    if (random() < 0.05 && all.length > 0) pool.core.abort(all[Math.floor(random() * all.length)]!.request.id);
    await runStep(pool);
  }
  await runUntilIdle(pool);
  assert.ok(all.length > 100);
  assert.ok(
    all.every(({ sink }) => sink.finished !== null && sink.finished.finishReason !== "error"),
    "nothing failed",
  );
  assert.ok(pool.scheduler.kvCacheState().numPreemptions > 0);
  assert.ok(pool.scheduler.kvCacheState().prefixHitTokens > 0);
  assert.equal(pool.scheduler.kvCacheState().numUsedBlocks, 0);
  assert.equal(pool.engine.numAcquiredSequences, 0);
  // Cached prefixes wait in host memory, not in the pool; dropping them leaves nothing saved.
  assert.equal(pool.engine.numUsedCells, 0);
  assert.ok(pool.engine.numRestores > 0, "some hits were restored from saved prefixes");
  assert.equal(pool.scheduler.resetPrefixCache(), true);
  assert.equal(pool.scheduler.kvCacheState().numSavedPrefixes, 0);
});
