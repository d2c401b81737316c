/**
 * 1,000 streamed requests abandoned at random points against the real model, 32 at a time, on a KV pool small
 * enough that some are preempted meanwhile: afterwards nothing runs or waits, every sequence slot is free, every KV
 * block is back in the pool, and llama.cpp holds no cell (cached prefixes wait in host memory).
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { SequenceId } from "../../src/engine/engine.ts";
import { LlamaEngine } from "../../src/engine/llama-engine.ts";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";

let server: ModelServer;

before(async () => {
  server = await startModelServer(["--parallel", "16", "--ctx-size", "256", "--kv-cache-tokens", "384"]);
});

after(async () => {
  await server?.close();
});

const NUM_REQUESTS = 1000;
const CONCURRENCY = 32;

/** Deterministic per request: how it ends. */
function planFor(index: number): { readonly abortAfterChunks: number; readonly abortAfterMs: number | null } {
  const mix = (index * 2654435761) >>> 0;
  // A fifth are cut by a timer without reading at all (often while still queued); the rest after 0-15 chunks.
  return mix % 5 === 0
    ? { abortAfterChunks: Number.POSITIVE_INFINITY, abortAfterMs: mix % 40 }
    : { abortAfterChunks: mix % 16, abortAfterMs: null };
}

async function abandon(index: number): Promise<void> {
  const plan = planFor(index);
  const controller = new AbortController();
  const timer = plan.abortAfterMs === null ? null : setTimeout(() => controller.abort(), plan.abortAfterMs);
  try {
    const response = await fetch(`${server.baseUrl}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      signal: controller.signal,
      body: JSON.stringify({
        model: STORIES_ID,
        prompt: `Story ${index}: Once upon a time`,
        max_tokens: 96,
        temperature: 0.8,
        seed: index,
        ignore_eos: true,
        stream: true,
      }),
    });
    assert.equal(response.status, 200);
    let chunks = 0;
    for await (const chunk of response.body ?? []) {
      void chunk;
      if (chunks++ >= plan.abortAfterChunks) break;
    }
    controller.abort();
  } catch (error) {
    if ((error as Error).name !== "AbortError") throw error;
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
}

test("1,000 streams abandoned at random points leave no running request, no busy sequence and no used KV block", async () => {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < NUM_REQUESTS) await abandon(next++);
    }),
  );
  // Each abort lands at the engine's next step; wait for the last ones to be processed.
  const loop = server.runtime.loop;
  for (let waited = 0; waited < 200 && (loop.numRunning > 0 || loop.numWaiting > 0); waited++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.equal(loop.numRunning, 0);
  assert.equal(loop.numWaiting, 0);
  // A client that gives up within milliseconds may be gone before its request is submitted; all others finished.
  assert.ok(server.finished.length > NUM_REQUESTS * 0.95, `${server.finished.length} requests reached the scheduler`);
  const reasons = new Set(server.finished.map((stats) => stats.finishReason));
  assert.ok(!reasons.has("error"), `finish reasons: ${[...reasons].join(", ")}`);
  assert.ok(
    server.finished.filter((stats) => stats.finishReason === "abort").length > NUM_REQUESTS * 0.9,
    "the clients' aborts reached the scheduler",
  );
  assert.equal(loop.numRunning + loop.numWaiting, 0);

  const state = loop.kvCacheState();
  const engine = server.runtime.engine;
  assert.ok(engine instanceof LlamaEngine);
  assert.equal(state.numUsedBlocks, 0, "every KV block is back in the pool");
  assert.equal(engine.numFreeSequences(), engine.info.numSequences, "no sequence is held by a request");
  assert.ok(state.numPreemptions > 0, "the small pool preempted while the storm ran");
  // llama.cpp's own view: no sequence holds a cell, and none does after the saved prefixes are dropped.
  for (let sequenceId = 0; sequenceId < engine.info.numSequences; sequenceId++) {
    assert.equal(engine.positionsOf(sequenceId as SequenceId), null, `sequence ${sequenceId} holds no cells`);
  }
  assert.equal(server.runtime.loop.resetPrefixCache(), true);
  assert.equal(server.runtime.loop.kvCacheState().numSavedPrefixes, 0);
  for (let sequenceId = 0; sequenceId < engine.info.numSequences; sequenceId++) {
    assert.equal(engine.positionsOf(sequenceId as SequenceId), null, `sequence ${sequenceId} holds no cells`);
  }
  const afterwards = await server.client.completions.create({
    model: STORIES_ID,
    prompt: "Once upon a time",
    max_tokens: 8,
    temperature: 0,
  });
  assert.match(afterwards.choices[0]?.text ?? "", /^, there was/);
});
