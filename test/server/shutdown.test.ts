import { test } from "node:test";
import assert from "node:assert/strict";
import { FAKE_MODEL_ID, parseSse, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, postJson, StepGate } from "./support.ts";

const STREAM_BODY = { model: FAKE_MODEL_ID, prompt: "hello", max_tokens: 50, temperature: 0, stream: true };

test("closing lets a running stream finish within the grace period and refuses new requests with 503", async () => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 60_000 });
  const hold = gate.holdAt(2);
  const streamed = postJson(server.app, "/v1/completions", STREAM_BODY);
  await hold.reached;
  const closed = server.app.close();
  const refused = await postJson(server.app, "/v1/completions", { model: FAKE_MODEL_ID, prompt: "x" });
  const body = assertError(refused, { status: 503, type: "service_unavailable", code: "service_unavailable" });
  assert.match(body.message, /shutting down/);
  assert.equal(refused.headers["retry-after"], "5");
  hold.release();
  const frames = parseSse((await streamed).body);
  await closed;
  assert.equal(frames.at(-1), "[DONE]");
  const finish = JSON.parse(frames.at(-2) ?? "{}") as { choices: { finish_reason: string }[] };
  assert.equal(finish.choices[0]?.finish_reason, "length", "the stream ran to max_tokens");
  assert.equal(server.engine.isDisposed, true, "the model is disposed once the server has closed");
});

test("a stream still running when the grace period ends gets a 503 error frame, then [DONE]", async () => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 0 });
  const hold = gate.holdAt(2);
  const streamed = postJson(server.app, "/v1/completions", STREAM_BODY);
  await hold.reached;
  const closed = server.app.close();
  hold.release();
  const frames = parseSse((await streamed).body);
  await closed;
  assert.equal(frames.at(-1), "[DONE]");
  const errorFrame = JSON.parse(frames.at(-2) ?? "{}") as { error?: { type: string; code: string } };
  assert.deepEqual(
    { type: errorFrame.error?.type, code: errorFrame.error?.code },
    { type: "service_unavailable", code: "service_unavailable" },
  );
  assert.equal(server.engine.numAcquiredSequences, 0);
});

test("a non-streamed request cut off by shutdown is answered 503 with Retry-After, not a truncated 200", async () => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 0 });
  const hold = gate.holdAt(1);
  const pending = postJson(server.app, "/v1/completions", { ...STREAM_BODY, stream: false });
  await hold.reached;
  const closed = server.app.close();
  hold.release();
  const response = await pending;
  await closed;
  assertError(response, { status: 503, type: "service_unavailable", code: "service_unavailable" });
  assert.equal(response.headers["retry-after"], "5");
});
