/**
 * A client going away mid-request must abort its generation and free its sequence. `inject` has no socket to
 * close, so these tests destroy the simulated response object, which emits "close" on it exactly as a closed
 * connection does on a real `ServerResponse`.
 */

import assert from "node:assert/strict";
import { once } from "node:events";
import type { ServerResponse } from "node:http";
import { test } from "node:test";
import { FAKE_MODEL_ID, type FakeServer, startFakeServer } from "../helpers/fake-server.ts";
import { okJson, postJson, StepGate } from "./support.ts";

const MODEL = FAKE_MODEL_ID;
/** BOS, then "Hello": the FakeEngine maps character c to token c - 32 + 2. */
const HELLO_TOKENS = [1, 42, 71, 78, 78, 81];

async function startHeldServer(t: {
  after: (fn: () => Promise<void>) => void;
}): Promise<{ server: FakeServer; gate: StepGate }> {
  const gate = new StepGate();
  const server = await startFakeServer({ numSequences: 1, beforeStep: gate.beforeStep });
  t.after(async () => {
    gate.releaseAll();
    await server.app.close();
  });
  return { server, gate };
}

async function closeClient(res: ServerResponse): Promise<void> {
  const closed = once(res, "close");
  res.destroy();
  await closed;
}

/** Runs a one-token completion of "Hello"; it can only start once the single sequence is free. */
async function runFollowUp(server: FakeServer): Promise<void> {
  const body = okJson(
    await postJson(server.app, "/v1/completions", {
      model: MODEL,
      prompt: HELLO_TOKENS,
      max_tokens: 1,
      temperature: 0,
    }),
  );
  assert.deepEqual(body.usage, {
    prompt_tokens: 6,
    completion_tokens: 1,
    total_tokens: 7,
    prompt_tokens_details: { cached_tokens: 0 },
  });
}

test("a client closing a chat stream mid-generation aborts it and frees its sequence at the next step", async (t) => {
  const { server, gate } = await startHeldServer(t);
  const hold = gate.holdAt(2);
  const response = await server.app.inject({
    method: "POST",
    url: "/v1/chat/completions",
    headers: { "content-type": "application/json" },
    payload: JSON.stringify({
      model: MODEL,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 100,
      temperature: 0,
      stream: true,
    }),
    payloadAsStream: true,
  });
  assert.equal(response.statusCode, 200);
  const [firstFrame] = (await once(response.stream(), "data")) as [Buffer];
  assert.match(firstFrame.toString("utf8"), /^data: \{.*"role":"assistant".*\}\n\n/);
  await hold.reached;
  assert.equal(server.engine.numAcquiredSequences, 1, "the stream holds the only sequence while generating");

  await closeClient(response.raw.res);
  hold.release();
  await runFollowUp(server);

  // Steps 0-2 generated the stream's first three tokens; the abort was applied before step 3, which is the
  // follow-up's whole prompt in the freed sequence. Without the abort the stream would have run 100 steps.
  assert.equal(server.engine.steps.length, 4);
  assert.deepEqual(server.engine.steps[3], [{ sequenceId: 0, startPos: 0, tokens: HELLO_TOKENS, shouldSample: true }]);
  assert.equal(server.engine.numAcquiredSequences, 0);
  assert.equal(server.loop.numRunning, 0);
});

test("a client closing a non-streamed completion mid-generation aborts it and frees its sequence", async (t) => {
  const { server, gate } = await startHeldServer(t);
  let captured: ServerResponse | null = null;
  server.app.addHook("onRequest", async (request, reply) => {
    if (request.headers["x-test-capture"] === "yes") captured = reply.raw;
  });
  const hold = gate.holdAt(2);
  const pending = postJson(
    server.app,
    "/v1/completions",
    { model: MODEL, prompt: "abc", max_tokens: 100, temperature: 0 },
    { "x-test-capture": "yes" },
  );
  // Settles when the connection closes; handled at once so the expected rejection is never unhandled.
  const outcome = pending.then(
    (response) => `answered ${response.statusCode}`,
    (error: NodeJS.ErrnoException) => String(error.code),
  );
  await hold.reached;
  assert.ok(captured !== null, "the request's response object was captured");
  assert.equal(server.engine.numAcquiredSequences, 1);

  await closeClient(captured);
  hold.release();
  assert.equal(await outcome, "LIGHT_ECONNRESET", "the client saw its connection close, not an answer");
  await runFollowUp(server);

  assert.equal(server.engine.steps.length, 4);
  assert.deepEqual(server.engine.steps[3], [{ sequenceId: 0, startPos: 0, tokens: HELLO_TOKENS, shouldSample: true }]);
  assert.equal(server.engine.numAcquiredSequences, 0);
  assert.equal(server.loop.numRunning, 0);
});

test("a client that closes its stream while still queued is withdrawn and never reaches the engine", async (t) => {
  const { server, gate } = await startHeldServer(t);
  const hold = gate.holdAt(0);
  const running = postJson(server.app, "/v1/completions", {
    model: MODEL,
    prompt: HELLO_TOKENS,
    max_tokens: 2,
    temperature: 0,
  });
  await hold.reached;

  // The chat stream sends its role chunk before generating, so the response starts while the request is queued.
  const queued = await server.app.inject({
    method: "POST",
    url: "/v1/chat/completions",
    headers: { "content-type": "application/json" },
    payload: JSON.stringify({
      model: MODEL,
      messages: [{ role: "user", content: "queued" }],
      max_tokens: 5,
      stream: true,
    }),
    payloadAsStream: true,
  });
  assert.equal(queued.statusCode, 200);
  assert.equal(server.loop.numWaiting, 1);
  await closeClient(queued.raw.res);

  hold.release();
  assert.equal((await running).statusCode, 200);
  const queuedPrompt = server.engine.renderChat([{ role: "user", content: "queued" }]).tokens;
  const reached = server.engine.steps.some((items) => items.some((item) => item.tokens.join() === queuedPrompt.join()));
  assert.equal(reached, false);
  assert.equal(server.loop.numWaiting, 0);
  assert.equal(server.engine.numAcquiredSequences, 0);
});
