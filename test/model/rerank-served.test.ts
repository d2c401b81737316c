/**
 * Retrieval models served over HTTP as the model: the project's synthetic tiny-bert (mean pooling) on
 * /v1/embeddings, and its two rerankers (a BERT cross-encoder with one logit, a Qwen3-style reranker whose head
 * outputs P(yes), P(no)) on the rerank routes. Random weights: the scores mean nothing, so the tests check what the
 * server promises about them — ranges, order, batching, the input built as llama.cpp's server builds it.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { synth, withTempDir } from "../helpers/gguf-files.ts";
import { type ModelServer, startModelServer } from "../helpers/model-server.ts";

const QUERY = "what does the little dog like";
const DOCUMENTS = [
  "the little dog likes to play with a red ball",
  "the sun was hot and the girl went to the park",
  "mom said the cat was sleeping on the bed",
  "the dog ran to his friend in the big tree",
  "one day a bird found a blue flower",
];

let dir = "";
let release: () => void = () => {};
const ready = new Promise<void>((resolve) => {
  void withTempDir("rerank-served", async (tempDir) => {
    dir = tempDir;
    resolve();
    await new Promise<void>((done) => {
      release = done;
    });
  });
});
after(() => release());

async function serve(shape: string, flags: string[] = []): Promise<ModelServer> {
  await ready;
  const file = path.join(dir, `${shape}.gguf`);
  const result = await synth("--like", shape, "--type", "f32", "--out", file);
  assert.equal(result.code, 0, result.stderr);
  return startModelServer(["--model", file, "--ctx-size", "512", "--parallel", "1", ...flags]);
}

async function post(server: ModelServer, url: string, body: unknown) {
  const response = await fetch(`${server.baseUrl}${url}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> & { results?: Result[] } };
}

interface Result {
  readonly index: number;
  readonly relevance_score: number;
  readonly document?: { readonly text: string };
}

for (const shape of ["tiny-bert-reranker", "tiny-reranker"]) {
  describe(`${shape} served as the model`, () => {
    let server: ModelServer;
    before(async () => {
      // Flash attention's CPU kernels sum in an order that depends on the batch (a score moved by up to 1.2e-3
      // between alone and batched on these random weights); without it, alone and batched agree to 1e-5.
      server = await serve(shape, ["--ctx-size", "1024", "--flash-attn", "off"]);
    });
    after(() => server.close());

    test("scores every document in [0, 1], sorted, cut to top_n, the same alone as among others", async () => {
      assert.equal(server.runtime.engine.info.pooling, "rank");
      const { status, body } = await post(server, "/v1/rerank", { query: QUERY, documents: DOCUMENTS, top_n: 3 });
      assert.equal(status, 200, JSON.stringify(body));
      const results = body.results ?? [];
      assert.equal(results.length, 3);
      for (const result of results) {
        assert.ok(result.relevance_score >= 0 && result.relevance_score <= 1, String(result.relevance_score));
        assert.equal(result.document?.text, DOCUMENTS[result.index]);
      }
      assert.ok(
        results.every((result, i) => i === 0 || (results[i - 1]?.relevance_score ?? 0) >= result.relevance_score),
      );
      // Each document alone: the same score as when it was batched with the others.
      for (const result of results) {
        const alone = await post(server, "/v1/rerank", { query: QUERY, documents: [DOCUMENTS[result.index]] });
        const score = alone.body.results?.[0]?.relevance_score ?? Number.NaN;
        assert.ok(Math.abs(score - result.relevance_score) < 1e-5, `${score} vs ${result.relevance_score}`);
      }
    });

    test("raw_scores return the head's first output; the 100-document request is served", async () => {
      const raw = await post(server, "/rerank", { query: QUERY, texts: DOCUMENTS, raw_scores: true });
      const scored = await post(server, "/rerank", { query: QUERY, texts: DOCUMENTS });
      const rawByIndex = new Map(
        (raw.body as unknown as { index: number; score: number }[]).map((r) => [r.index, r.score]),
      );
      for (const item of scored.body as unknown as { index: number; score: number }[]) {
        const head = rawByIndex.get(item.index) ?? Number.NaN;
        // One logit: the score is its sigmoid; a Qwen3 head's first output is already P(yes).
        const expected = shape === "tiny-reranker" ? head : 1 / (1 + Math.exp(-head));
        assert.ok(Math.abs(item.score - expected) < 1e-6, `${item.score} vs ${expected}`);
      }
      const many = Array.from({ length: 100 }, (_, i) => `${DOCUMENTS[i % DOCUMENTS.length]} ${i}`);
      const big = await post(server, "/v1/rerank", {
        query: QUERY,
        documents: many,
        top_n: 5,
        return_documents: false,
      });
      assert.equal(big.status, 200);
      assert.equal(big.body.results?.length, 5);
    });
  });
}

describe("tiny-bert served as the model", () => {
  let server: ModelServer;
  before(async () => {
    server = await serve("tiny-bert");
  });
  after(() => server.close());

  test("mean-pooled unit vectors, the same alone as in a batch; not a reranker", async () => {
    assert.equal(server.runtime.engine.info.pooling, "mean");
    const batch = await post(server, "/v1/embeddings", {
      model: "tiny-bert",
      input: DOCUMENTS,
      encoding_format: "float",
    });
    assert.equal(batch.status, 200, JSON.stringify(batch.body));
    const data = batch.body.data as { embedding: number[] }[];
    for (const item of data) assert.ok(Math.abs(Math.hypot(...item.embedding) - 1) < 1e-6);
    const alone = await post(server, "/v1/embeddings", {
      model: "tiny-bert",
      input: DOCUMENTS[2],
      encoding_format: "float",
    });
    const vector = (alone.body.data as { embedding: number[] }[])[0]?.embedding ?? [];
    const batched = data[2]?.embedding ?? [];
    const difference = Math.max(...vector.map((value, i) => Math.abs(value - (batched[i] ?? Number.NaN))));
    assert.ok(difference < 1e-4, `largest difference ${difference}`);
    const refused = await post(server, "/v1/rerank", { query: QUERY, documents: DOCUMENTS });
    assert.equal(refused.status, 400);
  });
});
