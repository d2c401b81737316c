/**
 * Retrieval-augmented generation against running OpenAI-compatible servers (pagoda, llama-server, vLLM): chunk a
 * corpus, embed it, retrieve, re-rank, answer, and print what each stage did and how fast.
 *
 *   npm run example:rag -- [--base-url http://127.0.0.1:8080] [--corpus DIR] [--query TEXT]… [--hyde]
 *
 * `npm run example:rag -- --help` lists every flag; README.md beside this file explains them.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { median } from "../../bench/side-by-side.ts";
import {
  type Chunk,
  chunkCorpus,
  DEFAULT_OVERLAP_WORDS,
  DEFAULT_WORDS_PER_CHUNK,
  type Query,
  queriesFromChunks,
  readCorpus,
  syntheticCorpus,
} from "./corpus.ts";
import { resolveModel } from "./endpoints.ts";
import {
  DEFAULT_EMBED_BATCH_SIZE,
  DEFAULT_EMBED_CONCURRENCY,
  DEFAULT_HYDE_MAX_TOKENS,
  DEFAULT_MAX_TOKENS,
  DEFAULT_NUM_CONTEXT,
  DEFAULT_NUM_RETRIEVED,
  type PipelineOptions,
  type PipelineRun,
  type QueryResult,
  type RagEndpoints,
  runPipeline,
} from "./pipeline.ts";

const HELP = `Usage: npm run example:rag -- [flags]

Servers (one for every role, or one per role):
  --base-url URL          the server for all three roles (default http://127.0.0.1:8080)
  --chat-url URL          /v1/chat/completions (default --base-url)
  --embeddings-url URL    /v1/embeddings (default --base-url)
  --rerank-url URL        /v1/rerank (default --base-url)
  --chat-model ID         model ids sent in each request; when left out, the only model the role's
  --embedding-model ID    server lists in /v1/models (a server that lists several needs the id given)
  --rerank-model ID
Corpus and queries:
  --corpus DIR            .txt, .md and .rst files under DIR (default: a synthetic corpus of random words)
  --documents N           synthetic documents (default 300)
  --seed N                seed of the synthetic corpus and queries (default 1)
  --chunk-words N         words per chunk (default ${DEFAULT_WORDS_PER_CHUNK})
  --overlap-words N       words shared by neighbouring chunks (default ${DEFAULT_OVERLAP_WORDS})
  --query TEXT            a question (repeatable)
  --queries-file FILE     questions, one per line
  --queries N             without --query or --queries-file: N queries cut from random chunks (default 8)
Pipeline:
  --hyde                  search with the embedding of a generated hypothetical answer (HyDE)
  --retrieve N            chunks retrieved for re-ranking (default ${DEFAULT_NUM_RETRIEVED})
  --context N             re-ranked chunks given to the generator (default ${DEFAULT_NUM_CONTEXT})
  --batch-size N          chunks per embedding request (default ${DEFAULT_EMBED_BATCH_SIZE})
  --embed-concurrency N   embedding requests in flight while ingesting (default ${DEFAULT_EMBED_CONCURRENCY})
  --concurrency N         queries in flight (default 1)
  --max-tokens N          answer length limit (default ${DEFAULT_MAX_TOKENS})
  --hyde-max-tokens N     hypothetical answer length limit (default ${DEFAULT_HYDE_MAX_TOKENS})
  --temperature T         sampling temperature (default 0)
  --quiet                 print only the throughput
`;

const { values } = parseArgs({
  options: {
    "base-url": { type: "string", default: "http://127.0.0.1:8080" },
    "chat-url": { type: "string" },
    "embeddings-url": { type: "string" },
    "rerank-url": { type: "string" },
    "chat-model": { type: "string" },
    "embedding-model": { type: "string" },
    "rerank-model": { type: "string" },
    corpus: { type: "string" },
    documents: { type: "string", default: "300" },
    seed: { type: "string", default: "1" },
    "chunk-words": { type: "string", default: String(DEFAULT_WORDS_PER_CHUNK) },
    "overlap-words": { type: "string", default: String(DEFAULT_OVERLAP_WORDS) },
    query: { type: "string", multiple: true },
    "queries-file": { type: "string" },
    queries: { type: "string", default: "8" },
    hyde: { type: "boolean", default: false },
    retrieve: { type: "string", default: String(DEFAULT_NUM_RETRIEVED) },
    context: { type: "string", default: String(DEFAULT_NUM_CONTEXT) },
    "batch-size": { type: "string", default: String(DEFAULT_EMBED_BATCH_SIZE) },
    "embed-concurrency": { type: "string", default: String(DEFAULT_EMBED_CONCURRENCY) },
    concurrency: { type: "string", default: "1" },
    "max-tokens": { type: "string", default: String(DEFAULT_MAX_TOKENS) },
    "hyde-max-tokens": { type: "string", default: String(DEFAULT_HYDE_MAX_TOKENS) },
    temperature: { type: "string", default: "0" },
    quiet: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

/** A flag's value as a number, or a clear error. */
function numberFlag(name: keyof typeof values, min: number): number {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value < min)
    throw new Error(`--${name} must be a number ≥ ${min}, got ${values[name]}`);
  return value;
}

/** The three roles' URLs and model ids: per-role flags over --base-url, ids from the flags or /v1/models. */
async function resolveEndpoints(): Promise<RagEndpoints> {
  const strip = (url: string): string => url.replace(/\/+$/, "").replace(/\/v1$/, "");
  const baseUrl = strip(values["base-url"]);
  const chatUrl = strip(values["chat-url"] ?? baseUrl);
  const embeddingsUrl = strip(values["embeddings-url"] ?? baseUrl);
  const rerankUrl = strip(values["rerank-url"] ?? baseUrl);
  const [chatModel, embeddingModel, rerankModel] = await Promise.all([
    resolveModel(chatUrl, values["chat-model"], "--chat-model"),
    resolveModel(embeddingsUrl, values["embedding-model"], "--embedding-model"),
    resolveModel(rerankUrl, values["rerank-model"], "--rerank-model"),
  ]);
  return {
    chat: { url: chatUrl, model: chatModel },
    embeddings: { url: embeddingsUrl, model: embeddingModel },
    rerank: { url: rerankUrl, model: rerankModel },
  };
}

/** The chunks, the queries, and a line saying where they came from. */
async function loadInputs(): Promise<{ chunks: Chunk[]; queries: Query[]; description: string }> {
  const seed = numberFlag("seed", 0);
  const documents =
    values.corpus === undefined ? syntheticCorpus(seed, numberFlag("documents", 1)) : await readCorpus(values.corpus);
  const chunks = chunkCorpus(documents, {
    wordsPerChunk: numberFlag("chunk-words", 1),
    overlapWords: numberFlag("overlap-words", 0),
  });
  const corpus =
    values.corpus === undefined
      ? `SYNTHETIC corpus: ${documents.length} documents of seeded random words (seed ${seed})`
      : `corpus ${values.corpus}: ${documents.length} files`;
  if (values.query === undefined && values["queries-file"] === undefined) {
    const queries = queriesFromChunks(chunks, seed + 1, numberFlag("queries", 1));
    return {
      chunks,
      queries,
      description: `${corpus}, ${chunks.length} chunks; ${plural(queries.length, "query")} cut from random chunks`,
    };
  }
  const fromFile =
    values["queries-file"] === undefined ? [] : (await readFile(values["queries-file"], "utf8")).split("\n");
  const queries = [...(values.query ?? []), ...fromFile]
    .map((text) => text.trim())
    .filter((text) => text !== "")
    .map((text) => ({ text, sourceChunkId: null }));
  return { chunks, queries, description: `${corpus}, ${chunks.length} chunks; ${plural(queries.length, "query")}` };
}

function printAnswers(chunks: readonly Chunk[], results: readonly QueryResult[]): void {
  for (const result of results) {
    console.log(`Q: ${result.query.text}`);
    if (result.hypothetical !== null) console.log(`   HyDE: ${oneLine(result.hypothetical, 160)}`);
    for (const item of result.context) {
      const chunk = chunks[item.chunkId];
      console.log(
        `   ${item.relevanceScore.toFixed(3)} ${chunk?.source} #${item.chunkId}: ${oneLine(chunk?.text ?? "", 80)}`,
      );
    }
    console.log(`A: ${oneLine(result.answer, 300)}\n`);
  }
}

function printThroughput(run: PipelineRun, isHyde: boolean): void {
  const { ingest, queries: phase } = run;
  console.log("| stage | work | seconds | rate |");
  console.log("| --- | ---: | ---: | ---: |");
  console.log(
    `| embed chunks | ${ingest.numChunks} chunks | ${ingest.seconds.toFixed(2)} | ${ingest.chunksPerSecond.toFixed(1)} chunks/s |`,
  );
  console.log(
    `| rerank | ${phase.numRerankDocuments} documents | ${phase.rerankBusySeconds.toFixed(2)} | ${phase.rerankDocumentsPerSecond.toFixed(1)} docs/s |`,
  );
  console.log(
    `| queries end to end | ${plural(phase.results.length, "query")} | ${phase.seconds.toFixed(2)} | ${phase.queriesPerSecond.toFixed(2)} queries/s |`,
  );
  const stages = ["hyde", "embed", "search", "rerank", "chat", "total"] as const;
  const medians = stages
    .filter((stage) => stage !== "hyde" || isHyde)
    .map((stage) => `${stage} ${median(phase.results.map((result) => result.timesMs[stage])).toFixed(1)}`);
  console.log(`\nper-query median ms: ${medians.join(", ")}`);

  const known = phase.results.filter((result) => result.query.sourceChunkId !== null);
  if (known.length === 0) return;
  const inRetrieved = known.filter((result) =>
    result.retrieved.some((hit) => hit.index === result.query.sourceChunkId),
  );
  const inContext = known.filter((result) =>
    result.context.some((item) => item.chunkId === result.query.sourceChunkId),
  );
  console.log(
    `the chunk a query was cut from: retrieved ${inRetrieved.length}/${known.length}, in the re-ranked context ` +
      `${inContext.length}/${known.length} (a plumbing check; with random-weight models it says nothing about retrieval quality)`,
  );
}

async function main(): Promise<void> {
  const endpoints = await resolveEndpoints();
  const { chunks, queries, description } = await loadInputs();
  const options: PipelineOptions = {
    endpoints,
    numRetrieved: numberFlag("retrieve", 1),
    numContext: numberFlag("context", 1),
    embedBatchSize: numberFlag("batch-size", 1),
    embedConcurrency: numberFlag("embed-concurrency", 1),
    queryConcurrency: numberFlag("concurrency", 1),
    isHyde: values.hyde,
    maxTokens: numberFlag("max-tokens", 1),
    hydeMaxTokens: numberFlag("hyde-max-tokens", 1),
    temperature: numberFlag("temperature", 0),
  };
  console.log(description);
  for (const [role, endpoint] of Object.entries(endpoints))
    console.log(`${role}: ${endpoint.model} at ${endpoint.url}`);
  console.log(
    `${options.isHyde ? "HyDE, " : ""}top ${options.numRetrieved} retrieved, re-ranked to ${options.numContext}, ` +
      `${options.queryConcurrency} in flight\n`,
  );
  const run = await runPipeline(chunks, queries, options);
  if (!values.quiet) printAnswers(chunks, run.queries.results);
  printThroughput(run, options.isHyde === true);
}

try {
  await main();
} catch (error) {
  // A flag, a server that is down or answers an error: the message says which and why; a stack adds nothing.
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}

function plural(count: number, noun: string): string {
  return `${count} ${count === 1 ? noun : noun === "query" ? "queries" : `${noun}s`}`;
}

function oneLine(text: string, maxChars: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= maxChars ? flat : `${flat.slice(0, maxChars - 1)}…`;
}
