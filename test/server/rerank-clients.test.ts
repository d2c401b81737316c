/**
 * The `cohere-ai` client (v1 and v2) against a listening pagoda whose (fake) model is a reranker: the client's own
 * request shapes reach the rerank routes and its parsers accept the answers. Real rerankers are exercised in
 * test/model/rerank*.test.ts.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { CohereClient, CohereClientV2 } from "cohere-ai";
import { FAKE_MODEL_ID, type FakeServer, startFakeServer } from "../helpers/fake-server.ts";

const QUERY = "what is a cat";
const DOCUMENTS = ["a cat is a small animal", "the stock market fell", "cats purr", "rain tomorrow"];

let server: FakeServer;
let baseUrl = "";

before(async () => {
  server = await startFakeServer({ pooling: "rank", contextSize: 512 });
  await server.app.listen({ host: "127.0.0.1", port: 0 });
  baseUrl = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
});

after(async () => {
  await server.app.close();
});

test("cohere-ai v1: rerank with topN and returnDocuments", async () => {
  const client = new CohereClient({ environment: baseUrl, token: "unused" });
  const response = await client.rerank({ query: QUERY, documents: DOCUMENTS, topN: 2, returnDocuments: true });
  assert.equal(response.results.length, 2);
  const [first, second] = response.results;
  assert.ok(first !== undefined && second !== undefined);
  assert.ok(first.relevanceScore >= second.relevanceScore);
  assert.equal(first.document?.text, DOCUMENTS[first.index]);
});

test("cohere-ai v2: rerank with a model and topN, documents not returned", async () => {
  const client = new CohereClientV2({ environment: baseUrl, token: "unused" });
  const response = await client.rerank({ model: FAKE_MODEL_ID, query: QUERY, documents: DOCUMENTS, topN: 3 });
  assert.equal(response.results.length, 3);
  const scores = response.results.map((result) => result.relevanceScore);
  assert.deepEqual(
    scores,
    [...scores].sort((a, b) => b - a),
  );
  for (const score of scores) assert.ok(score > 0 && score < 1);
});
