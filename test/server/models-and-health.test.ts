import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { FakeEngine } from "../../src/engine/fake-engine.ts";
import { EngineLoop } from "../../src/scheduler/engine-loop.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { buildApp } from "../../src/server/app.ts";
import { ServingState } from "../../src/server/serving-state.ts";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { assertError, okJson, postJson } from "./support.ts";

const MODEL = FAKE_MODEL_ID;
/** What startFakeServer registers: created 1_700_000_000 and the FakeEngine's default context of 256. */
const FAKE_MODEL = { id: MODEL, object: "model", created: 1_700_000_000, owned_by: "pagoda", max_model_len: 256 };

let app: FastifyInstance;
let engine: FakeEngine;

before(async () => {
  ({ app, engine } = await startFakeServer());
});

after(async () => {
  await app.close();
});

test("GET /v1/models lists the one served model in OpenAI's list format", async () => {
  const body = okJson(await app.inject({ method: "GET", url: "/v1/models" }));
  assertMatchesSchema("ListModelsResponse", body);
  assert.deepEqual(body, { object: "list", data: [FAKE_MODEL] });
});

test("GET /v1/models/:model returns the served model and 404 model_not_found for any other id", async () => {
  const body = okJson(await app.inject({ method: "GET", url: `/v1/models/${MODEL}` }));
  assertMatchesSchema("Model", body);
  assert.deepEqual(body, FAKE_MODEL);

  const error = assertError(await app.inject({ method: "GET", url: "/v1/models/gpt-4o" }), {
    status: 404,
    type: "invalid_request_error",
    code: "model_not_found",
    param: "model",
  });
  assert.ok(error.message.includes("gpt-4o"), error.message);
});

test("GET /health is 200 with status ok while the model is ready", async () => {
  const response = await app.inject({ method: "GET", url: "/health" });
  assert.deepEqual(okJson(response), { status: "ok" });
  assert.equal(response.headers["retry-after"], undefined);
});

test("GET /health is 503 with Retry-After while loading and turns 200 once the model is ready", async (t) => {
  const serving = new ServingState();
  const loadingApp = await buildApp({ serving });
  t.after(() => loadingApp.close());

  const loading = await loadingApp.inject({ method: "GET", url: "/health" });
  assert.equal(loading.statusCode, 503);
  assert.equal(loading.headers["retry-after"], "5");
  assert.deepEqual(JSON.parse(loading.body), { status: "loading" });

  const fake = new FakeEngine();
  const loop = new EngineLoop(
    fake,
    new Scheduler(fake, { maxNumSequences: 4, maxNumBatchedTokens: 64, maxNumWaiting: 8 }),
  );
  loop.start();
  serving.markReady({
    engine: fake,
    loop,
    modelId: MODEL,
    createdSeconds: 1_700_000_000,
    dispose: () => fake.dispose(),
  });

  assert.deepEqual(okJson(await loadingApp.inject({ method: "GET", url: "/health" })), { status: "ok" });
  assert.deepEqual(okJson(await loadingApp.inject({ method: "GET", url: "/v1/models" })), {
    object: "list",
    data: [FAKE_MODEL],
  });
  const completion = okJson(
    await postJson(loadingApp, "/v1/completions", { model: MODEL, prompt: "Hi", max_tokens: 2 }),
  );
  assert.deepEqual(completion.usage, {
    prompt_tokens: 3,
    completion_tokens: 2,
    total_tokens: 5,
    prompt_tokens_details: { cached_tokens: 0 },
  });
  assert.equal(fake.numAcquiredSequences, 0);
});

test("GET /health reports a failed load or a closing server as 503 with its status", async (t) => {
  const failedServing = new ServingState();
  failedServing.markFailed();
  const failedApp = await buildApp({ serving: failedServing });
  t.after(() => failedApp.close());
  const failed = await failedApp.inject({ method: "GET", url: "/health" });
  assert.equal(failed.statusCode, 503);
  assert.equal(failed.headers["retry-after"], "5");
  assert.deepEqual(JSON.parse(failed.body), { status: "failed" });

  const closingServer = await startFakeServer();
  t.after(() => closingServer.app.close());
  closingServer.serving.markClosing();
  const closing = await closingServer.app.inject({ method: "GET", url: "/health" });
  assert.equal(closing.statusCode, 503);
  assert.deepEqual(JSON.parse(closing.body), { status: "closing" });
});

test("every response carries an x-request-id, echoing the client's own when it sends one", async () => {
  const echoed = await app.inject({ method: "GET", url: "/health", headers: { "x-request-id": "client-chosen-id" } });
  assert.equal(echoed.headers["x-request-id"], "client-chosen-id");
  const generated = await app.inject({ method: "GET", url: "/v1/models" });
  assert.match(
    String(generated.headers["x-request-id"]),
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  );
  const other = await app.inject({ method: "GET", url: "/v1/models" });
  assert.notEqual(other.headers["x-request-id"], generated.headers["x-request-id"]);
});

test("no sequence is held after the model and health requests", () => {
  assert.equal(engine.numAcquiredSequences, 0);
});
