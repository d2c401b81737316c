/**
 * The RAG example's pipeline (examples/rag) side by side against pagoda and llama-server: embed a synthetic corpus,
 * then per query embed, search, re-rank 100 chunks to 5 and answer. Each side is three server processes started
 * here (generator, embedder, reranker) with the same threads and per-sequence contexts, or for pagoda one process
 * serving all three with `--one-process`. Rounds alternate which side goes first; every round has its own corpus
 * and queries (so no prompt cache carries over from a previous round), the same for both sides. Prints the median
 * chunks embedded/s, rerank documents/s and queries/s per side and pagoda / llama-server.
 *
 *   LLAMA_SERVER=path/to/llama-server npm run bench:rag -- [--llama-server PATH] [--one-process] [--rounds 5]
 *       [--threads 1] [--generator ../shared/models/stories260K.gguf] [--embedder FILE] [--reranker FILE]
 *       [--documents 200] [--queries 8] [--concurrency 2] [--max-tokens 64] [--hyde] [--pagoda bin/pagoda.js]
 *
 * Without --embedder and --reranker it writes the project's synthetic tiny-bert and tiny-bert-reranker (random
 * weights, F32) into a temporary folder: the speed means something, the retrieval does not.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chunkCorpus, queriesFromChunks, syntheticCorpus } from "../examples/rag/corpus.ts";
import { resolveModel } from "../examples/rag/endpoints.ts";
import { type PipelineOptions, type PipelineRun, type RagEndpoints, runPipeline } from "../examples/rag/pipeline.ts";
import { freePort, median } from "./side-by-side.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    "llama-server": { type: "string", default: process.env.LLAMA_SERVER },
    pagoda: { type: "string", default: path.join(repoRoot, "bin/pagoda.js") },
    "one-process": { type: "boolean", default: false },
    rounds: { type: "string", default: "5" },
    threads: { type: "string", default: "1" },
    generator: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    embedder: { type: "string" },
    reranker: { type: "string" },
    documents: { type: "string", default: "200" },
    queries: { type: "string", default: "8" },
    concurrency: { type: "string", default: "2" },
    "max-tokens": { type: "string", default: "64" },
    hyde: { type: "boolean", default: false },
  },
});
if (values["llama-server"] === undefined)
  throw new Error("give llama-server's path with --llama-server or LLAMA_SERVER");
const llamaServer = values["llama-server"];
const threads = String(Number(values.threads));
const numRounds = Number(values.rounds);
const queryConcurrency = Number(values.concurrency);
/** Generator sequences on both sides: one per query in flight (a query's HyDE and answer come one after the other). */
const numGeneratorSequences = Math.max(1, queryConcurrency);
/** Per-sequence context of the generator, and of the encoders (tiny-bert's trained context). */
const GENERATOR_CONTEXT = 2048;
const ENCODER_CONTEXT = 512;
/** llama-server slots of each encoder: as many inputs per decode as pagoda's --embedding-parallel default. */
const ENCODER_SLOTS = 32;

interface Side {
  readonly label: string;
  readonly endpoints: RagEndpoints;
}

/** Every child spawned, from the moment it is spawned, so a failed start-up elsewhere still stops it. */
const children: ChildProcess[] = [];

/** Spawns `command` listening on `port` and resolves with its URL once GET /health answers 200. */
async function startServer(label: string, command: string, args: readonly string[], port: number): Promise<string> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const tail: string[] = [];
  const keep = (data: Buffer) => {
    tail.push(...data.toString().split("\n").filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 20));
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`${label} exited with ${code}:\n${tail.join("\n")}`))),
  );
  exited.catch(() => {});
  const deadline = Date.now() + 120_000;
  for (;;) {
    const isReady = await Promise.race([
      fetch(`${url}/health`).then(
        (response) => response.ok,
        () => false,
      ),
      exited,
    ]);
    if (isReady) break;
    if (Date.now() > deadline) throw new Error(`${label} not ready after 120 s:\n${tail.join("\n")}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return url;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    await gone;
  } finally {
    clearTimeout(timer);
  }
}

async function writeSynthetic(dir: string, like: string): Promise<string> {
  const out = path.join(dir, `${like}.gguf`);
  const child = spawn(process.execPath, [values.pagoda, "synth", "--like", like, "--type", "f32", "--out", out], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`pagoda synth --like ${like} exited with ${code}`);
  return out;
}

async function started(label: string, command: string, args: string[]): Promise<string> {
  const port = await freePort();
  return startServer(label, command, [...args, "--port", String(port)], port);
}

async function startPagoda(generator: string, embedder: string, reranker: string): Promise<Side> {
  const pagoda = (model: string, ...more: string[]) => [values.pagoda, "--model", model, "--threads", threads, ...more];
  const generatorArgs = ["--parallel", String(numGeneratorSequences), "--ctx-size", String(GENERATOR_CONTEXT)];
  const encoderArgs = ["--parallel", "1", "--ctx-size", String(ENCODER_CONTEXT), "--log-level", "warn"];
  if (values["one-process"]) {
    const url = await started("pagoda", process.execPath, [
      ...pagoda(generator, ...generatorArgs, "--log-level", "warn"),
      ...["--embedding-model", embedder, "--rerank-model", reranker],
    ]);
    const id = (file: string) => path.basename(file).replace(/\.gguf$/, "");
    return {
      label: "pagoda",
      endpoints: {
        chat: { url, model: id(generator) },
        embeddings: { url, model: id(embedder) },
        rerank: { url, model: id(reranker) },
      },
    };
  }
  const [chat, embeddings, rerank] = await Promise.all([
    started("pagoda generator", process.execPath, pagoda(generator, ...generatorArgs, "--log-level", "warn")),
    started("pagoda embedder", process.execPath, pagoda(embedder, ...encoderArgs)),
    started("pagoda reranker", process.execPath, pagoda(reranker, ...encoderArgs, "--pooling", "rank")),
  ]);
  return { label: "pagoda", endpoints: await withModels(chat, embeddings, rerank) };
}

async function startLlamaServer(generator: string, embedder: string, reranker: string): Promise<Side> {
  const common = ["-t", threads, "-tb", threads];
  const encoder = `-np ${ENCODER_SLOTS} -c ${ENCODER_SLOTS * ENCODER_CONTEXT} -b 512 -ub 512`.split(" ");
  const [chat, embeddings, rerank] = await Promise.all([
    started("llama-server generator", llamaServer, [
      ...["-m", generator, ...common, "-np", String(numGeneratorSequences)],
      ...["-c", String(numGeneratorSequences * GENERATOR_CONTEXT), "-fa", "on", "--kv-unified"],
    ]),
    started("llama-server embedder", llamaServer, [
      ...["-m", embedder, ...common, "--embeddings", "--pooling", "mean", ...encoder],
    ]),
    started("llama-server reranker", llamaServer, ["-m", reranker, ...common, "--reranking", ...encoder]),
  ]);
  return { label: "llama-server", endpoints: await withModels(chat, embeddings, rerank) };
}

/** Each process serves one model: its id from its /v1/models. */
async function withModels(chat: string, embeddings: string, rerank: string): Promise<RagEndpoints> {
  const [chatModel, embeddingModel, rerankModel] = await Promise.all(
    [chat, embeddings, rerank].map((url) => resolveModel(url, undefined, "a model id")),
  );
  return {
    chat: { url: chat, model: chatModel ?? "" },
    embeddings: { url: embeddings, model: embeddingModel ?? "" },
    rerank: { url: rerank, model: rerankModel ?? "" },
  };
}

function pipelineOptions(side: Side): PipelineOptions {
  return {
    endpoints: side.endpoints,
    queryConcurrency,
    isHyde: values.hyde,
    maxTokens: Number(values["max-tokens"]),
    hydeMaxTokens: Number(values["max-tokens"]),
    // Equal work on both sides: every answer is max-tokens long, whatever each server's chat template makes of it.
    isIgnoreEos: true,
  };
}

/** The round's corpus and queries: the same for both sides, new each round. */
function roundInputs(round: number) {
  const chunks = chunkCorpus(syntheticCorpus(1000 + round, Number(values.documents)));
  return { chunks, queries: queriesFromChunks(chunks, 2000 + round, Number(values.queries)) };
}

const METRICS = [
  ["chunks embedded/s", (run: PipelineRun) => run.ingest.chunksPerSecond],
  ["rerank docs/s", (run: PipelineRun) => run.queries.rerankDocumentsPerSecond],
  ["queries/s", (run: PipelineRun) => run.queries.queriesPerSecond],
] as const;

/** Per query of the same round, whether both sides re-ranked the same chunks in the same order, and how many they share. */
function compareContexts(a: PipelineRun, b: PipelineRun): { numIdentical: number; numShared: number } {
  let numIdentical = 0;
  let numShared = 0;
  for (const [i, result] of a.queries.results.entries()) {
    const mine = result.context.map((item) => item.chunkId);
    const theirs = b.queries.results[i]?.context.map((item) => item.chunkId) ?? [];
    if (mine.join() === theirs.join()) numIdentical += 1;
    numShared += mine.filter((id) => theirs.includes(id)).length;
  }
  return { numIdentical, numShared };
}

async function measure(sides: readonly [Side, Side]): Promise<void> {
  const warm = roundInputs(-1);
  for (const side of sides) {
    await runPipeline(warm.chunks.slice(0, 64), warm.queries.slice(0, 2), pipelineOptions(side));
  }
  const runs: [PipelineRun[], PipelineRun[]] = [[], []];
  const agreement = { numQueries: 0, numIdentical: 0, numShared: 0 };
  for (let round = 0; round < numRounds; round++) {
    const { chunks, queries } = roundInputs(round);
    for (const at of round % 2 === 0 ? [0, 1] : [1, 0]) {
      runs[at]?.push(await runPipeline(chunks, queries, pipelineOptions(sides[at]!)));
    }
    const { numIdentical, numShared } = compareContexts(runs[0].at(-1)!, runs[1].at(-1)!);
    agreement.numQueries += queries.length;
    agreement.numIdentical += numIdentical;
    agreement.numShared += numShared;
  }
  console.log(`| metric | ${sides[0].label} | ${sides[1].label} | ${sides[0].label} / ${sides[1].label} |`);
  console.log("| --- | ---: | ---: | ---: |");
  for (const [name, metric] of METRICS) {
    const [first, second] = runs.map((sideRuns) => median(sideRuns.map(metric)));
    const digits = name === "queries/s" ? 2 : 1;
    console.log(
      `| ${name} | ${first?.toFixed(digits)} | ${second?.toFixed(digits)} | ${((first ?? 0) / (second ?? 1)).toFixed(2)}× |`,
    );
  }
  const tokens = (run: PipelineRun) => run.queries.results.reduce((sum, result) => sum + result.numCompletionTokens, 0);
  console.log(
    `\nanswer tokens per round: ${sides.map((side, i) => `${side.label} ${runs[i]?.map(tokens).join(", ")}`).join("; ")}`,
  );
  console.log(
    `re-ranked top 5: identical (ids and order) on both sides for ${agreement.numIdentical} of ${agreement.numQueries} ` +
      `queries, ${(agreement.numShared / agreement.numQueries).toFixed(2)} of 5 chunks shared on average`,
  );
}

const scratch = await mkdtemp(path.join(tmpdir(), "pagoda-bench-rag-"));
const stopAll = () => Promise.all(children.splice(0).map(stopChild));
process.once("SIGINT", () => void stopAll().finally(() => process.exit(130)));
try {
  const embedder = values.embedder ?? (await writeSynthetic(scratch, "tiny-bert"));
  const reranker = values.reranker ?? (await writeSynthetic(scratch, "tiny-bert-reranker"));
  const { generator } = values;
  // Both sides are up before anything is timed; the idle side waits on its sockets.
  const pagoda = await startPagoda(generator, embedder, reranker);
  const llama = await startLlamaServer(generator, embedder, reranker);
  const sizes = `${Number(values.documents)} synthetic documents per round, ${Number(values.queries)} queries, ${queryConcurrency} in flight`;
  console.log(
    `generator ${path.basename(generator)}, embedder ${path.basename(embedder)}, reranker ${path.basename(reranker)}; ` +
      `pagoda ${values["one-process"] ? "one process" : "three processes"}, llama-server three, --threads ${threads} in each; ` +
      `contexts per sequence: generator ${GENERATOR_CONTEXT} × ${numGeneratorSequences}, encoders ${ENCODER_CONTEXT}`,
  );
  console.log(
    `${sizes}; top 100 re-ranked to 5; answers of ${values["max-tokens"]} tokens (ignore_eos)${values.hyde ? ", HyDE" : ""}; ` +
      `${numRounds} rounds, order alternating, medians\n`,
  );
  await measure([pagoda, llama]);
} finally {
  await stopAll();
  await rm(scratch, { recursive: true, force: true });
}
