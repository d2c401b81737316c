/**
 * 1,000 streamed requests abandoned at random points against the real model, 32 at a time, on a KV pool small
 * enough that some are preempted meanwhile: afterwards nothing runs or waits, every sequence slot is free, every KV
 * block is back in the pool, and llama.cpp holds no cell (cached prefixes wait in host memory). Every request that
 * reached the scheduler finished exactly once; the others were given up by their clients before a response.
 */

import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { Socket } from "node:net";
import { after, before, mock, test } from "node:test";
import type { SequenceId } from "../../src/engine/engine.ts";
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
const STORM_MAX_TOKENS = 96;

/** Deterministic per request: how it ends. */
function planFor(index: number): { readonly abortAfterChunks: number; readonly abortAfterMs: number | null } {
  const mix = (index * 2654435761) >>> 0;
  // A fifth are cut by a timer without reading at all (often while still queued); the rest after 0-15 chunks.
  return mix % 5 === 0
    ? { abortAfterChunks: Number.POSITIVE_INFINITY, abortAfterMs: mix % 40 }
    : { abortAfterChunks: mix % 16, abortAfterMs: null };
}

/** Streams request `index` and gives up as planned; true when a response arrived before that. */
async function abandon(index: number): Promise<boolean> {
  const plan = planFor(index);
  const controller = new AbortController();
  const timer = plan.abortAfterMs === null ? null : setTimeout(() => controller.abort(), plan.abortAfterMs);
  try {
    const response = await fetch(`${server.baseUrl}/v1/completions`, {
      method: "POST",
      // One connection per request, closed after it: once every connection is gone, no request is on its way.
      headers: { "content-type": "application/json", connection: "close" },
      signal: controller.signal,
      body: JSON.stringify({
        model: STORIES_ID,
        prompt: `Story ${index}: Once upon a time`,
        max_tokens: STORM_MAX_TOKENS,
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
    return true;
  } catch (error) {
    if ((error as Error).name !== "AbortError") throw error;
    return false;
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
}

/** Resolves, from `closed()`, once every connection the server has accepted is closed. */
function trackConnections(http: Server): { closed(): Promise<void> } {
  const open = new Set<Socket>();
  const waiters: (() => void)[] = [];
  http.on("connection", (socket: Socket) => {
    open.add(socket);
    socket.once("close", () => {
      open.delete(socket);
      if (open.size === 0) for (const resolve of waiters.splice(0)) resolve();
    });
  });
  return { closed: () => (open.size === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve))) };
}

test("1,000 streams abandoned at random points leave no running request, no busy sequence and no used KV block", async () => {
  const loop = server.runtime.loop;
  const submits = mock.method(loop, "submit");
  const connections = trackConnections(server.app.server);
  let next = 0;
  let numResponded = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < NUM_REQUESTS) if (await abandon(next++)) numResponded += 1;
    }),
  );
  // The server still answers; by then it has accepted and read every connection opened before this one.
  const afterwards = await fetch(`${server.baseUrl}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", connection: "close" },
    body: JSON.stringify({ model: STORIES_ID, prompt: "Once upon a time", max_tokens: 8, temperature: 0 }),
  });
  assert.equal(afterwards.status, 200);
  assert.match(((await afterwards.json()) as { choices: { text: string }[] }).choices[0]?.text ?? "", /^, there was/);
  // Every client is gone, so every abort has reached its request; each lands at the engine's next step.
  await connections.closed();
  await loop.drained();
  submits.mock.restore();

  assert.equal(loop.numRunning, 0);
  assert.equal(loop.numWaiting, 0);
  const calls = submits.mock.calls.filter((call) => call.arguments[0].params.maxTokens === STORM_MAX_TOKENS);
  assert.ok(
    calls.every((call) => call.result === true),
    "no submission was refused",
  );
  const submitted = calls.map((call) => call.arguments[0].id).sort();
  const finished = server.finished.filter((stats) => stats.maxTokens === STORM_MAX_TOKENS);
  assert.deepEqual(
    finished.map((stats) => stats.requestId).sort(),
    submitted,
    "every submitted request finished exactly once",
  );
  // A client that gives up within milliseconds may be gone before its request is submitted; one that saw a
  // response never is.
  assert.ok(
    numResponded <= submitted.length && submitted.length <= NUM_REQUESTS,
    `${numResponded} responses, ${submitted.length} submissions, ${NUM_REQUESTS} requests`,
  );
  const reasons = new Set(finished.map((stats) => stats.finishReason));
  assert.deepEqual(
    [...reasons].filter((reason) => reason !== "abort" && reason !== "length"),
    [],
    "abandoned streams are aborted, or finished before their client left",
  );

  const state = loop.kvCacheState();
  const engine = server.runtime.engine;
  assert.equal(state.numUsedBlocks, 0, "every KV block is back in the pool");
  assert.equal(engine.numFreeSequences(), engine.info.numSequences, "no sequence is held by a request");
  assert.ok(state.numPreemptions > 0, "the small pool preempted while the storm ran");
  // llama.cpp's own view: no sequence holds a cell, and none does after the saved prefixes are dropped.
  for (let sequenceId = 0; sequenceId < engine.info.numSequences; sequenceId++) {
    assert.equal(engine.positionsOf(sequenceId as SequenceId), null, `sequence ${sequenceId} holds no cells`);
  }
  assert.equal(loop.resetPrefixCache(), true);
  assert.equal(loop.kvCacheState().numSavedPrefixes, 0);
  for (let sequenceId = 0; sequenceId < engine.info.numSequences; sequenceId++) {
    assert.equal(engine.positionsOf(sequenceId as SequenceId), null, `sequence ${sequenceId} holds no cells`);
  }
});
