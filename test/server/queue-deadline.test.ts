/**
 * Bounded admission of the KV-pool scheduler over HTTP: a request that waits longer than the queue deadline is
 * answered 503 in OpenAI's envelope with Retry-After, while the request holding the engine finishes normally.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, postJson, StepGate } from "./support.ts";

test("a request past the queue deadline gets 503 with Retry-After; the running one is unaffected", async (t) => {
  const gate = new StepGate();
  const server = await startFakeServer({ numSequences: 1, beforeStep: gate.beforeStep }, { queueTimeoutMs: 50 });
  t.after(async () => {
    gate.releaseAll();
    await server.app.close();
  });
  const hold = gate.holdAt(1);
  const running = postJson(server.app, "/v1/completions", { model: FAKE_MODEL_ID, prompt: "hello", max_tokens: 4 });
  await hold.reached;
  const queued = postJson(server.app, "/v1/completions", { model: FAKE_MODEL_ID, prompt: "waiting", max_tokens: 4 });
  await new Promise((resolve) => setTimeout(resolve, 80));
  hold.release();
  const late = await queued;
  const body = assertError(late, { status: 503, type: "service_unavailable", code: "service_unavailable" });
  assert.match(body.message, /waited .* in the queue/);
  assert.ok(Number(late.headers["retry-after"]) > 0, "Retry-After tells the client when to come back");
  assert.equal((await running).statusCode, 200);
});
