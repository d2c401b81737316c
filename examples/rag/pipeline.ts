/**
 * Retrieval-augmented generation over three HTTP roles:
 *
 *   ingest:  chunks → /v1/embeddings in batches → VectorIndex (exact, dot product of unit vectors)
 *   a query: [HyDE: /v1/chat/completions writes a hypothetical answer, which is embedded instead of the query]
 *            → /v1/embeddings → the index's top `numRetrieved` → /v1/rerank to the top `numContext`
 *            → /v1/chat/completions answers from those chunks
 *
 * Throughput is measured as the work of each stage over its wall time: chunks embedded per second over the ingest,
 * rerank documents per second over the time at least one rerank request was in flight, and queries per second over
 * the whole query phase (every stage of every query, end to end).
 */
import type { Chunk, Query } from "./corpus.ts";
import { type ChatMessage, chat, type Endpoint, embed, rerank } from "./endpoints.ts";
import { type SearchHit, VectorIndex } from "./vector-index.ts";

export interface RagEndpoints {
  readonly chat: Endpoint;
  readonly embeddings: Endpoint;
  readonly rerank: Endpoint;
}

export interface PipelineOptions {
  readonly endpoints: RagEndpoints;
  /** Chunks the index returns for re-ranking. Defaults to 100. */
  readonly numRetrieved?: number;
  /** Re-ranked chunks given to the generator as context. Defaults to 5. */
  readonly numContext?: number;
  /** Chunks per `/v1/embeddings` request while ingesting. Defaults to 32. */
  readonly embedBatchSize?: number;
  /** Embedding requests in flight while ingesting. Defaults to 4. */
  readonly embedConcurrency?: number;
  /** Queries in flight, each running its stages in order. Defaults to 1. */
  readonly queryConcurrency?: number;
  /** Search with the embedding of a generated hypothetical answer (HyDE) instead of the query's. Defaults to false. */
  readonly isHyde?: boolean;
  /** `max_tokens` of an answer. Defaults to 128. */
  readonly maxTokens?: number;
  /** `max_tokens` of a HyDE hypothetical answer. Defaults to 64. */
  readonly hydeMaxTokens?: number;
  /** Sampling temperature of both generations. Defaults to 0. */
  readonly temperature?: number;
  /** Send `ignore_eos` (llama-server's and vLLM's extension) so every answer is `maxTokens` long, as benchmarks want. Defaults to false. */
  readonly isIgnoreEos?: boolean;
}

export const DEFAULT_NUM_RETRIEVED = 100;
export const DEFAULT_NUM_CONTEXT = 5;
export const DEFAULT_EMBED_BATCH_SIZE = 32;
export const DEFAULT_EMBED_CONCURRENCY = 4;
export const DEFAULT_MAX_TOKENS = 128;
export const DEFAULT_HYDE_MAX_TOKENS = 64;

export interface IngestResult {
  readonly index: VectorIndex;
  readonly numChunks: number;
  readonly seconds: number;
  readonly chunksPerSecond: number;
}

export interface StageTimesMs {
  readonly hyde: number;
  readonly embed: number;
  readonly search: number;
  readonly rerank: number;
  readonly chat: number;
  readonly total: number;
}

export interface QueryResult {
  readonly query: Query;
  /** The HyDE hypothetical answer that was embedded, or null without HyDE. */
  readonly hypothetical: string | null;
  /** The index's hits, best first (`numRetrieved` of them). */
  readonly retrieved: readonly SearchHit[];
  /** The re-ranked context, most relevant first. */
  readonly context: readonly { readonly chunkId: number; readonly relevanceScore: number }[];
  readonly answer: string;
  readonly numCompletionTokens: number;
  readonly timesMs: StageTimesMs;
}

export interface QueryPhaseResult {
  readonly results: readonly QueryResult[];
  readonly seconds: number;
  readonly queriesPerSecond: number;
  readonly numRerankDocuments: number;
  /** Wall time during which at least one rerank request was in flight. */
  readonly rerankBusySeconds: number;
  readonly rerankDocumentsPerSecond: number;
}

export interface PipelineRun {
  readonly ingest: IngestResult;
  readonly queries: QueryPhaseResult;
}

/** Embeds every chunk, in batches, into a new index; the index's vector i is chunk i. */
export async function ingest(chunks: readonly Chunk[], options: PipelineOptions): Promise<IngestResult> {
  const batchSize = Math.max(1, options.embedBatchSize ?? DEFAULT_EMBED_BATCH_SIZE);
  const batches: (readonly Chunk[])[] = [];
  for (let start = 0; start < chunks.length; start += batchSize) batches.push(chunks.slice(start, start + batchSize));
  const startMs = performance.now();
  const vectors = await mapConcurrent(batches, options.embedConcurrency ?? DEFAULT_EMBED_CONCURRENCY, (batch) =>
    embed(
      options.endpoints.embeddings,
      batch.map((chunk) => chunk.text),
    ),
  );
  const seconds = (performance.now() - startMs) / 1000;
  const flat = vectors.flat();
  const index = new VectorIndex(flat[0]?.length ?? 1);
  index.add(flat);
  return { index, numChunks: chunks.length, seconds, chunksPerSecond: chunks.length / seconds };
}

/** Runs every query through its stages, `queryConcurrency` at a time; results in query order. */
export async function answerQueries(
  chunks: readonly Chunk[],
  index: VectorIndex,
  queries: readonly Query[],
  options: PipelineOptions,
): Promise<QueryPhaseResult> {
  const rerankSpansMs: [number, number][] = [];
  const startMs = performance.now();
  const results = await mapConcurrent(queries, options.queryConcurrency ?? 1, (query) =>
    answerQuery(chunks, index, query, options, rerankSpansMs),
  );
  const seconds = (performance.now() - startMs) / 1000;
  const numRerankDocuments = results.reduce((sum, result) => sum + result.retrieved.length, 0);
  const rerankBusySeconds = unionLengthMs(rerankSpansMs) / 1000;
  return {
    results,
    seconds,
    queriesPerSecond: queries.length / seconds,
    numRerankDocuments,
    rerankBusySeconds,
    rerankDocumentsPerSecond: numRerankDocuments / rerankBusySeconds,
  };
}

/** Ingest, then the queries. */
export async function runPipeline(
  chunks: readonly Chunk[],
  queries: readonly Query[],
  options: PipelineOptions,
): Promise<PipelineRun> {
  const ingested = await ingest(chunks, options);
  return { ingest: ingested, queries: await answerQueries(chunks, ingested.index, queries, options) };
}

async function answerQuery(
  chunks: readonly Chunk[],
  index: VectorIndex,
  query: Query,
  options: PipelineOptions,
  rerankSpansMs: [number, number][],
): Promise<QueryResult> {
  const { endpoints } = options;
  const sampling = {
    temperature: options.temperature ?? 0,
    ...(options.isIgnoreEos === true ? { ignore_eos: true } : {}),
  };
  const startMs = performance.now();
  let hypothetical: string | null = null;
  if (options.isHyde === true) {
    const written = await chat(endpoints.chat, hydeMessages(query.text), {
      ...sampling,
      max_tokens: options.hydeMaxTokens ?? DEFAULT_HYDE_MAX_TOKENS,
    });
    hypothetical = written.content.trim();
  }
  const hydeMs = performance.now();
  // An empty hypothetical (a model may stop at once) cannot be embedded: the query stands in for it.
  const [vector] = await embed(endpoints.embeddings, [hypothetical || query.text]);
  const embedMs = performance.now();
  const retrieved = index.search(vector ?? [], options.numRetrieved ?? DEFAULT_NUM_RETRIEVED);
  const searchMs = performance.now();
  const hits = await rerank(
    endpoints.rerank,
    query.text,
    retrieved.map((hit) => chunks[hit.index]?.text ?? ""),
    options.numContext ?? DEFAULT_NUM_CONTEXT,
  );
  const rerankMs = performance.now();
  rerankSpansMs.push([searchMs, rerankMs]);
  const context = hits.map((hit) => ({
    chunkId: retrieved[hit.index]?.index ?? -1,
    relevanceScore: hit.relevanceScore,
  }));
  const answer = await chat(
    endpoints.chat,
    answerMessages(
      query.text,
      context.map((item) => chunks[item.chunkId]?.text ?? ""),
    ),
    { ...sampling, max_tokens: options.maxTokens ?? DEFAULT_MAX_TOKENS },
  );
  const endMs = performance.now();
  return {
    query,
    hypothetical,
    retrieved,
    context,
    answer: answer.content,
    numCompletionTokens: answer.numCompletionTokens,
    timesMs: {
      hyde: hydeMs - startMs,
      embed: embedMs - hydeMs,
      search: searchMs - embedMs,
      rerank: rerankMs - searchMs,
      chat: endMs - rerankMs,
      total: endMs - startMs,
    },
  };
}

function hydeMessages(question: string): ChatMessage[] {
  return [
    {
      role: "system",
      content: "Write a short passage that answers the question, as it might appear in a document. Do not add remarks.",
    },
    { role: "user", content: question },
  ];
}

function answerMessages(question: string, passages: readonly string[]): ChatMessage[] {
  const numbered = passages.map((passage, i) => `[${i + 1}] ${passage}`).join("\n\n");
  return [
    {
      role: "system",
      content:
        "Answer the question from the numbered passages only, citing them like [2]. " +
        "If they do not contain the answer, say that they do not.",
    },
    { role: "user", content: `Passages:\n\n${numbered}\n\nQuestion: ${question}` },
  ];
}

/** `task` over `items` with at most `concurrency` in flight; results in item order. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
      while (next < items.length) {
        const at = next++;
        results[at] = await task(items[at] as T, at);
      }
    }),
  );
  return results;
}

/** The total length of the union of [start, end] spans. */
function unionLengthMs(spans: readonly [number, number][]): number {
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let coveredUntil = Number.NEGATIVE_INFINITY;
  for (const [start, end] of sorted) {
    if (end <= coveredUntil) continue;
    total += end - Math.max(start, coveredUntil);
    coveredUntil = end;
  }
  return total;
}
