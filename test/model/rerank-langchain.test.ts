/**
 * LangChain's `CohereRerank` (`@langchain/cohere`) against a listening pagoda serving the project's synthetic BERT
 * cross-encoder: its `rerank()` and `compressDocuments()` must rank and score exactly as pagoda's own /v1/rerank
 * does for the same documents. `@langchain/cohere` depends on cohere-ai 7 while the project's cohere-ai is 8, so
 * each runs twice: with a v1 `CohereClient` of the cohere-ai that `@langchain/cohere` resolves, and with one of the
 * project's (what an application that passes its own client gets).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { CohereRerank } from "@langchain/cohere";
import { Document } from "@langchain/core/documents";
import { CohereClient } from "cohere-ai";
import { synth } from "../helpers/gguf-files.ts";
import { type ModelServer, startModelServer } from "../helpers/model-server.ts";

const SHAPE = "tiny-bert-reranker";
const QUERY = "what does the little dog like";
const TEXTS = [
  "the little dog likes to play with a red ball",
  "the sun was hot and the girl went to the park",
  "mom said the cat was sleeping on the bed",
  "the dog ran to his friend in the big tree",
  "one day a bird found a blue flower",
  "lily and ben saw a big dog in the garden",
];

/** The client type `CohereRerank` declares: cohere-ai 7's `CohereClient`. */
type LangChainCohereClient = NonNullable<ConstructorParameters<typeof CohereRerank>[0]>["client"];

/** cohere-ai as `@langchain/cohere` itself imports it (its own nested cohere-ai 7), not the project's 8. */
const langChainCohere = createRequire(import.meta.resolve("@langchain/cohere"))("cohere-ai") as {
  CohereClient: new (options: { environment: string; token: string }) => NonNullable<LangChainCohereClient>;
};

interface Ranked {
  readonly index: number;
  readonly relevanceScore: number;
}

let dir = "";
let server: ModelServer;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "pagoda-rerank-langchain-"));
  const file = path.join(dir, `${SHAPE}.gguf`);
  const result = await synth("--like", SHAPE, "--type", "f32", "--out", file);
  assert.equal(result.code, 0, result.stderr);
  // Flash attention off: its CPU kernels' sums depend on the batch; requests here are sent one at a time anyway.
  server = await startModelServer(["--model", file, "--ctx-size", "512", "--parallel", "1", "--flash-attn", "off"]);
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** pagoda's /v1/rerank for the same documents, as LangChain reports it: index and score, best first. */
async function direct(documents: readonly string[], topN: number): Promise<Ranked[]> {
  const response = await fetch(`${server.baseUrl}/v1/rerank`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: SHAPE, query: QUERY, documents, top_n: topN }),
  });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { results: { index: number; relevance_score: number }[] };
  return body.results.map((result) => ({ index: result.index, relevanceScore: result.relevance_score }));
}

const clients: [string, () => LangChainCohereClient][] = [
  [
    "cohere-ai 7 (the one @langchain/cohere resolves)",
    () => new langChainCohere.CohereClient({ environment: server.baseUrl, token: "unused" }),
  ],
  [
    "cohere-ai 8 (the project's)",
    // Each major's CohereClient declares its own protected `_options`, so TypeScript holds them unrelated; the v1
    // rerank call LangChain makes exists in both, which is what this case checks.
    () => new CohereClient({ environment: server.baseUrl, token: "unused" }) as unknown as LangChainCohereClient,
  ],
];

for (const [name, makeClient] of clients) {
  describe(`CohereRerank with a ${name} client`, () => {
    test("rerank() over every document gives pagoda's order and scores, for strings and Documents alike", async () => {
      const reranker = new CohereRerank({ client: makeClient(), model: SHAPE, topN: TEXTS.length });
      const expected = await direct(TEXTS, TEXTS.length);
      assert.equal(expected.length, TEXTS.length);
      assert.deepEqual(await reranker.rerank(TEXTS, QUERY), expected);
      const documents = TEXTS.map((text, id) => new Document({ pageContent: text, metadata: { id } }));
      assert.deepEqual(await reranker.rerank(documents, QUERY), expected);
      // A per-call topN cuts the same ranking.
      assert.deepEqual(await reranker.rerank(documents, QUERY, { topN: 2 }), expected.slice(0, 2));
    });

    test("compressDocuments() keeps LangChain's default top 3 Documents, best first, scored as pagoda scores them", async () => {
      const reranker = new CohereRerank({ client: makeClient(), model: SHAPE });
      const documents = TEXTS.map((text, id) => new Document({ pageContent: text, metadata: { id } }));
      const expected = await direct(TEXTS, 3);
      const compressed = await reranker.compressDocuments(documents, QUERY);
      assert.deepEqual(
        compressed.map((document) => ({
          pageContent: document.pageContent,
          metadata: document.metadata,
        })),
        expected.map((result) => ({
          pageContent: TEXTS[result.index],
          metadata: { id: result.index, relevanceScore: result.relevanceScore },
        })),
      );
      const scores = expected.map((result) => result.relevanceScore);
      assert.deepEqual(
        scores,
        [...scores].sort((a, b) => b - a),
      );
      for (const score of scores) assert.ok(score >= 0 && score <= 1, String(score));
    });
  });
}
