/**
 * The rerank routes on the fake engine made a reranker (`pooling: "rank"`): each anchor's request and response
 * shape, scores from the head's outputs, sorting and `top_n`, documents returned or not, and the refusals.
 * The fake's "head" is its embedding's first component, a function of the (query, document) tokens.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { relevance } from "../../src/server/routes/rerank.ts";
import { FAKE_MODEL_ID, type FakeServer, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, okJson, postJson } from "./support.ts";

const QUERY = "what is a cat";
const DOCUMENTS = ["a cat is a small animal", "the stock market fell", "cats purr", "rain tomorrow"];

let reranker: FakeServer;
let generator: FakeServer;

before(async () => {
  reranker = await startFakeServer({ pooling: "rank", contextSize: 512 });
  generator = await startFakeServer();
});

after(async () => {
  await reranker.app.close();
  await generator.app.close();
});

/** The score the route must give each document: the head's output through `relevance`. */
async function expectedScores(): Promise<number[]> {
  const inputs = DOCUMENTS.map((text) => reranker.engine.rerankInput(QUERY, text));
  const outputs = await reranker.engine.embed(inputs);
  return outputs.map((output) => relevance(output.embedding, "logits"));
}

test("/v1/rerank answers Jina's and Cohere v1's shape: sorted, top_n, documents returned by default", async () => {
  const scores = await expectedScores();
  const order = scores.map((score, index) => ({ score, index })).sort((a, b) => b.score - a.score);
  const body = okJson(
    await postJson(reranker.app, "/v1/rerank", { model: FAKE_MODEL_ID, query: QUERY, documents: DOCUMENTS, top_n: 3 }),
  );
  assert.equal(body.model, FAKE_MODEL_ID);
  assert.deepEqual(
    body.results,
    order
      .slice(0, 3)
      .map(({ score, index }) => ({ index, relevance_score: score, document: { text: DOCUMENTS[index] } })),
  );
  assert.ok(body.usage.prompt_tokens > 0);
  for (const result of body.results) assert.ok(result.relevance_score > 0 && result.relevance_score < 1);
});

test("/v2/rerank (Cohere v2) returns documents only when asked, and takes {text} documents", async () => {
  const documents = DOCUMENTS.map((text) => ({ text }));
  const plain = okJson(await postJson(reranker.app, "/v2/rerank", { model: FAKE_MODEL_ID, query: QUERY, documents }));
  assert.equal(plain.results.length, DOCUMENTS.length);
  assert.equal(plain.results[0].document, undefined);
  assert.deepEqual(plain.meta.api_version, { version: "2" });
  const withDocuments = okJson(
    await postJson(reranker.app, "/v2/rerank", { query: QUERY, documents, return_documents: true }),
  );
  assert.equal(withDocuments.results[0].document.text, DOCUMENTS[withDocuments.results[0].index]);
});

test("/rerank with texts answers TEI's bare array, raw scores and texts on request", async () => {
  const raw = okJson(
    await postJson(reranker.app, "/rerank", { query: QUERY, texts: DOCUMENTS, raw_scores: true, return_text: true }),
  );
  assert.ok(Array.isArray(raw));
  const inputs = DOCUMENTS.map((text) => reranker.engine.rerankInput(QUERY, text));
  const heads = (await reranker.engine.embed(inputs)).map((output) => output.embedding[0]);
  for (const item of raw) {
    assert.equal(item.score, heads[item.index]);
    assert.equal(item.text, DOCUMENTS[item.index]);
  }
  const jina = okJson(await postJson(reranker.app, "/rerank", { query: QUERY, documents: DOCUMENTS }));
  assert.equal(jina.results.length, DOCUMENTS.length);
});

test("/v1/score (vLLM) scores text_1 against each text_2 in input order", async () => {
  const scores = await expectedScores();
  const body = okJson(
    await postJson(reranker.app, "/v1/score", { model: FAKE_MODEL_ID, text_1: QUERY, text_2: DOCUMENTS }),
  );
  assert.deepEqual(
    body.data.map((item: { index: number; score: number }) => [item.index, item.score]),
    scores.map((score, index) => [index, score]),
  );
  const one = okJson(await postJson(reranker.app, "/v1/score", { text_1: QUERY, text_2: DOCUMENTS[0] }));
  assert.equal(one.data.length, 1);
});

const bad = (status: number, code: string | null, param: string) => ({
  status,
  type: "invalid_request_error",
  code,
  param,
});

test("refusals: not a reranker, no documents, both documents and texts, unknown model", async () => {
  assertError(
    await postJson(generator.app, "/v1/rerank", { query: QUERY, documents: DOCUMENTS }),
    bad(400, "unsupported_parameter", "model"),
  );
  assertError(await postJson(reranker.app, "/v1/rerank", { query: QUERY, documents: [] }), bad(400, null, "documents"));
  assertError(
    await postJson(reranker.app, "/rerank", { query: QUERY, documents: DOCUMENTS, texts: DOCUMENTS }),
    bad(400, null, "texts"),
  );
  assertError(
    await postJson(reranker.app, "/v1/rerank", { model: "nope", query: QUERY, documents: DOCUMENTS }),
    bad(404, "model_not_found", "model"),
  );
});

test("pooled inputs are counted by route; a reranker gives no embeddings (400)", async () => {
  const before = await reranker.app.inject({ method: "GET", url: "/metrics" });
  const count = (text: string, route: string) =>
    Number(
      new RegExp(`^pagoda_pooled_inputs_total\\{route="${route}",model_name="${FAKE_MODEL_ID}"\\} (\\d+)$`, "m").exec(
        text,
      )?.[1] ?? "NaN",
    );
  okJson(await postJson(reranker.app, "/v1/rerank", { query: QUERY, documents: DOCUMENTS }));
  assertError(
    await postJson(reranker.app, "/v1/embeddings", { model: FAKE_MODEL_ID, input: ["a", "b"] }),
    bad(400, "unsupported_parameter", "model"),
  );
  const after = (await reranker.app.inject({ method: "GET", url: "/metrics" })).body;
  assert.equal(count(after, "rerank") - count(before.body, "rerank"), DOCUMENTS.length);
  assert.equal(count(after, "embeddings") - count(before.body, "embeddings"), 0);
});

test("relevance is the sigmoid of one logit, the first label's softmax probability of several, or the probability given", () => {
  assert.equal(relevance([0], "logits"), 0.5);
  assert.ok(Math.abs(relevance([2], "logits") - 1 / (1 + Math.exp(-2))) < 1e-15);
  assert.ok(Math.abs(relevance([1, 1], "logits") - 0.5) < 1e-15);
  assert.ok(Math.abs(relevance([Math.log(3), 0], "logits") - 0.75) < 1e-12);
  assert.equal(relevance([0.8, 0.2], "probabilities"), 0.8);
});
