/**
 * The RAG example (examples/rag) end to end against one pagoda process serving its three roles: stories260K
 * generates (and writes the HyDE answers), the synthetic tiny-bert embeds, tiny-bert-reranker reranks. Random
 * weights: retrieval quality means nothing here, the plumbing does: every chunk indexed, every query's 100 retrieved
 * chunks reranked to 5 of them, each answer generated from those.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { chunkCorpus, queriesFromChunks, syntheticCorpus } from "../../examples/rag/corpus.ts";
import { runPipeline } from "../../examples/rag/pipeline.ts";
import { synth, withTempDir } from "../helpers/gguf-files.ts";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";

let server: ModelServer;
let release: () => void = () => {};

before(async () => {
  const dir = await new Promise<string>((ready) => {
    void withTempDir("rag-example", async (tempDir) => {
      ready(tempDir);
      await new Promise<void>((done) => {
        release = done;
      });
    });
  });
  const files: string[] = [];
  for (const shape of ["tiny-bert", "tiny-bert-reranker"]) {
    const file = path.join(dir, `${shape}.gguf`);
    const result = await synth("--like", shape, "--out", file);
    assert.equal(result.code, 0, result.stderr);
    files.push(file);
  }
  server = await startModelServer([
    "--parallel",
    "4",
    "--embedding-model",
    files[0] ?? "",
    "--rerank-model",
    files[1] ?? "",
  ]);
});
after(async () => {
  await server?.close();
  release();
});

test("chunks are embedded and indexed, each query retrieves 100, reranks them to 5 and is answered from those", async () => {
  const chunks = chunkCorpus(syntheticCorpus(7, 80));
  assert.ok(chunks.length > 100, `${chunks.length} chunks`);
  const queries = queriesFromChunks(chunks, 7, 3);
  const run = await runPipeline(chunks, queries, {
    endpoints: {
      chat: { url: server.baseUrl, model: STORIES_ID },
      embeddings: { url: server.baseUrl, model: "tiny-bert" },
      rerank: { url: server.baseUrl, model: "tiny-bert-reranker" },
    },
    isHyde: true,
    maxTokens: 24,
    hydeMaxTokens: 16,
    queryConcurrency: 2,
  });
  assert.equal(run.ingest.numChunks, chunks.length);
  assert.equal(run.queries.results.length, queries.length);
  assert.equal(run.queries.numRerankDocuments, 100 * queries.length);
  for (const result of run.queries.results) {
    assert.ok(result.hypothetical !== null && result.hypothetical.length > 0);
    assert.equal(result.retrieved.length, 100);
    assert.equal(result.context.length, 5);
    const retrievedIds = new Set(result.retrieved.map((hit) => hit.index));
    for (const chunk of result.context) assert.ok(retrievedIds.has(chunk.chunkId), "context comes from the retrieved");
    const scores = result.context.map((chunk) => chunk.relevanceScore);
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
    );
    assert.ok(result.answer.length > 0);
  }
  assert.ok(run.ingest.chunksPerSecond > 0 && run.queries.queriesPerSecond > 0);
});
