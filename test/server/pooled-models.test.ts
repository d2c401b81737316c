/**
 * Models served beside the generator (`--embedding-model`, `--rerank-model`) on fake engines: listed by /v1/models,
 * picked by the request's `model` (a rerank without one takes the first reranker), refused where they do not
 * fit, and counted under their own `model_name`. The same over real models and processes is
 * test/model/pooled-models-served.test.ts's.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { FakeEngine } from "../../src/engine/fake-engine.ts";
import { FAKE_MODEL_ID, type FakeServer, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, okJson, postJson } from "./support.ts";

const EMBEDDER = "fake-embedder";
const RERANKER = "fake-reranker";
const DOCUMENTS = ["one", "two two", "three three three"];

let server: FakeServer;
before(async () => {
  server = await startFakeServer(
    {},
    {
      pooledModels: [
        { modelId: EMBEDDER, role: "embedding", engineOptions: { pooling: "mean", contextSize: 128 } },
        { modelId: RERANKER, role: "rerank", engineOptions: { contextSize: 512 } },
      ],
    },
  );
});
after(() => server.app.close());

const bad = (status: number, code: string, param: string) => ({ status, type: "invalid_request_error", code, param });

test("/v1/models lists the generator, then the pooled models, each with its own context", async () => {
  const listed = okJson(await server.app.inject({ method: "GET", url: "/v1/models" }));
  assert.deepEqual(
    listed.data.map((model: { id: string; max_model_len: number }) => [model.id, model.max_model_len]),
    [
      [FAKE_MODEL_ID, 256],
      [EMBEDDER, 128],
      [RERANKER, 512],
    ],
  );
  assert.equal(okJson(await server.app.inject({ method: "GET", url: `/v1/models/${RERANKER}` })).id, RERANKER);
});

test("embeddings go to the model named (OpenAI's request always names one)", async () => {
  for (const [model, expected] of [
    [EMBEDDER, EMBEDDER],
    [FAKE_MODEL_ID, FAKE_MODEL_ID],
  ] as const) {
    const body = okJson(await postJson(server.app, "/v1/embeddings", { model, input: ["a", "b"] }));
    assert.equal(body.model, expected);
    assert.equal(body.data.length, 2);
  }
  assertError(
    await postJson(server.app, "/v1/embeddings", { model: RERANKER, input: "a" }),
    bad(400, "unsupported_parameter", "model"),
  );
});

test("rerank and score go to the reranker named or, without a name, the first; the generator is no reranker", async () => {
  for (const model of [RERANKER, undefined]) {
    const body = okJson(await postJson(server.app, "/v1/rerank", { model, query: "q", documents: DOCUMENTS }));
    assert.equal(body.model, RERANKER);
    assert.equal(body.results.length, DOCUMENTS.length);
  }
  const scored = okJson(await postJson(server.app, "/v1/score", { text_1: "q", text_2: DOCUMENTS }));
  assert.equal(scored.model, RERANKER);
  assertError(
    await postJson(server.app, "/v1/rerank", { model: FAKE_MODEL_ID, query: "q", documents: DOCUMENTS }),
    bad(400, "unsupported_parameter", "model"),
  );
});

test("a pooled model does not generate, and an unknown model's 404 names every served model", async () => {
  const refused = await postJson(server.app, "/v1/completions", { model: EMBEDDER, prompt: "hi", max_tokens: 2 });
  assertError(refused, bad(400, "unsupported_parameter", "model"));
  assert.match(refused.json().error.message, /served for \/v1\/embeddings only/);
  const unknown = await postJson(server.app, "/v1/embeddings", { model: "nope", input: "a" });
  assertError(unknown, bad(404, "model_not_found", "model"));
  assert.match(unknown.json().error.message, /serves `fake-model`, `fake-embedder`, `fake-reranker`/);
});

test("pooled inputs are counted under each model's name, from zero for the route it serves", async () => {
  const metricsText = async () => (await server.app.inject({ method: "GET", url: "/metrics" })).body;
  const count = (text: string, route: string, model: string) =>
    Number(
      new RegExp(`^pagoda_pooled_inputs_total\\{route="${route}",model_name="${model}"\\} (\\d+)$`, "m").exec(
        text,
      )?.[1] ?? "NaN",
    );
  const before = await metricsText();
  assert.ok(!before.includes(`route="embeddings",model_name="${RERANKER}"`), "a reranker has no embeddings series");
  okJson(await postJson(server.app, "/v1/embeddings", { model: EMBEDDER, input: ["a", "b", "c"] }));
  okJson(await postJson(server.app, "/v1/rerank", { query: "q", documents: DOCUMENTS }));
  const after = await metricsText();
  assert.equal(count(after, "embeddings", EMBEDDER) - count(before, "embeddings", EMBEDDER), 3);
  assert.equal(count(after, "rerank", RERANKER) - count(before, "rerank", RERANKER), DOCUMENTS.length);
  assert.equal(count(after, "embeddings", FAKE_MODEL_ID), count(before, "embeddings", FAKE_MODEL_ID));
});

test("each model's embedding queue is a gauge, read at every scrape", async () => {
  const queues = [server.engine, ...(server.serving.runtime?.pooledModels ?? []).map((served) => served.engine)];
  queues.forEach((engine, index) => {
    assert.ok(engine instanceof FakeEngine);
    engine.waitingInputs = 10 * (index + 1);
  });
  const text = (await server.app.inject({ method: "GET", url: "/metrics" })).body;
  for (const [model, waiting] of [
    [FAKE_MODEL_ID, 10],
    [EMBEDDER, 20],
    [RERANKER, 30],
  ] as const)
    assert.match(text, new RegExp(`^pagoda_pooled_inputs_waiting\\{model_name="${model}"\\} ${waiting}$`, "m"));
});

test("with the generator's own embeddings off, the pooled models still answer and naming the generator is a 400", async (t) => {
  const quiet = await startFakeServer(
    {},
    {
      isEmbeddingsEnabled: false,
      hasPooledModels: true,
      pooledModels: [{ modelId: EMBEDDER, role: "embedding" }],
    },
  );
  t.after(() => quiet.app.close());
  okJson(await postJson(quiet.app, "/v1/embeddings", { model: EMBEDDER, input: "a" }));
  const refused = await postJson(quiet.app, "/v1/embeddings", { model: FAKE_MODEL_ID, input: "a" });
  assertError(refused, bad(400, "unsupported_parameter", "model"));
  assert.match(refused.json().error.message, /--embeddings false/);
  okJson(await postJson(quiet.app, "/tokenize", { model: FAKE_MODEL_ID, prompt: "a" }));
});
