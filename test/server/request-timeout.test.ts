/**
 * `--request-timeout-seconds`: a generation running past it is stopped through the same abort a client disconnect uses and
 * answered 504 (an error frame, then [DONE], on a stream). The engine is held at a known step until the deadline's
 * timer has fired, so nothing here depends on how fast the machine is.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { FastifyInstance } from "fastify";
import { FAKE_MODEL_ID, type FakeServer, parseSse, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, Deferred, okJson, postJson, StepGate } from "./support.ts";

const TIMEOUT_MS = 20;
const LONG = { model: FAKE_MODEL_ID, prompt: "abc", max_tokens: 100, temperature: 0, ignore_eos: true };

interface TimedServer {
  readonly server: FakeServer;
  readonly gate: StepGate;
  /** Resolves once `count` deadlines have fired. */
  expired(count?: number): Promise<void>;
}

async function start(
  t: { after: (fn: () => Promise<void>) => void },
  requestTimeoutMs = TIMEOUT_MS,
): Promise<TimedServer> {
  const gate = new StepGate();
  const server = await startFakeServer({ numSequences: 1, beforeStep: gate.beforeStep }, { requestTimeoutMs });
  t.after(async () => {
    gate.releaseAll();
    await server.app.close();
  });
  const firings = Array.from({ length: 4 }, () => new Deferred());
  let numFired = 0;
  const metrics = server.app.serverMetrics;
  const observe = metrics.observeRequestTimeout.bind(metrics);
  metrics.observeRequestTimeout = () => {
    observe();
    firings[numFired++]?.resolve();
  };
  return { server, gate, expired: (count = 1) => (firings[count - 1] as Deferred).promise };
}

async function timeoutCount(app: FastifyInstance): Promise<string | undefined> {
  const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
  return /^pagoda_request_timeouts_total (\d+)$/m.exec(metrics)?.[1];
}

test("a non-streamed generation past the timeout is answered 504 request_timeout and frees its sequence", async (t) => {
  const { server, gate, expired } = await start(t);
  const hold = gate.holdAt(2);
  const pending = postJson(server.app, "/v1/completions", LONG);
  await hold.reached;
  await expired();
  hold.release();
  const error = assertError(await pending, { status: 504, type: "server_error", code: "request_timeout", param: null });
  assert.match(error.message, /limit of 0\.02 s \(--request-timeout-seconds\)/);
  // Steps 0-2 ran; the abort was applied before step 3, so the engine never ran the other 97 tokens.
  assert.equal(server.engine.steps.length, 3);
  assert.equal(server.engine.numAcquiredSequences, 0);
  assert.equal(server.loop.numRunning, 0);
  assert.equal(await timeoutCount(server.app), "1");
});

test("a stream past the timeout ends with a 504 error frame, then [DONE], and frees its sequence", async (t) => {
  const { server, gate, expired } = await start(t);
  const hold = gate.holdAt(2);
  const pending = postJson(server.app, "/v1/chat/completions", {
    model: FAKE_MODEL_ID,
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 100,
    temperature: 0,
    ignore_eos: true,
    stream: true,
  });
  await hold.reached;
  await expired();
  hold.release();
  const response = await pending;
  assert.equal(response.statusCode, 200);
  const frames = parseSse(response.body);
  assert.equal(frames.at(-1), "[DONE]");
  const last = JSON.parse(frames.at(-2) ?? "{}") as { error?: { type: string; code: string; param: null } };
  assert.deepEqual(
    { type: last.error?.type, code: last.error?.code, param: last.error?.param },
    { type: "server_error", code: "request_timeout", param: null },
  );
  const contentFrames = frames
    .slice(0, -2)
    .map((frame) => JSON.parse(frame) as { choices: { delta: { content?: string } }[] });
  assert.ok(
    contentFrames.some((frame) => (frame.choices[0]?.delta.content ?? "").length > 0),
    "the tokens generated before the timeout were streamed",
  );
  assert.equal(server.engine.numAcquiredSequences, 0);
});

test("a request still queued when its time runs out is withdrawn and answered 504", async (t) => {
  const { server, gate, expired } = await start(t);
  const hold = gate.holdAt(0);
  // The first request holds the single sequence, held in step 0 until both deadlines have passed.
  const running = postJson(server.app, "/v1/completions", { ...LONG, max_tokens: 2 });
  await hold.reached;
  const queued = postJson(server.app, "/v1/completions", LONG);
  await expired(2);
  hold.release();
  const [first, second] = await Promise.all([running, queued]);
  assertError(first, { status: 504, type: "server_error", code: "request_timeout", param: null });
  assertError(second, { status: 504, type: "server_error", code: "request_timeout", param: null });
  // Only the first request's step 0 ever ran: the queued one never reached the engine.
  assert.equal(server.engine.steps.length, 1);
  assert.equal(server.loop.numWaiting, 0);
  assert.equal(server.engine.numAcquiredSequences, 0);
});

test("a generation that finishes in time is unaffected", async (t) => {
  const { server } = await start(t, 60_000);
  const body = okJson(await postJson(server.app, "/v1/completions", { ...LONG, max_tokens: 3 }));
  assert.equal(body.choices[0].finish_reason, "length");
  assert.equal(await timeoutCount(server.app), "0");
});
