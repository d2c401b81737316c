import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import OpenAI from "openai";
import { loadConfig } from "../../src/config/load-config.ts";
import { type LoadedRuntime, loadRuntime } from "../../src/runtime.ts";
import type { StepStats } from "../../src/scheduler/engine-loop.ts";
import type { RequestStats } from "../../src/scheduler/output-processor.ts";
import { buildApp } from "../../src/server/app.ts";
import { ServingState } from "../../src/server/serving-state.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The real trained tiny llama the tests run on; it lives beside the repository, never inside it. */
export const STORIES_MODEL = path.resolve(repoRoot, "../shared/models/stories260K.gguf");
export const STORIES_ID = "stories260K";

/** Eight story openings the greedy-identity tests run, alone and together. */
export const STORY_PROMPTS: readonly string[] = [
  "Once upon a time",
  "The little dog",
  "Lily and Ben",
  "One day, a big bird",
  "Tom had a red ball",
  "The sun was hot",
  "Mom said to Sue",
  "There was a tiny frog",
];

export interface ModelServer {
  readonly app: FastifyInstance;
  readonly runtime: LoadedRuntime;
  readonly baseUrl: string;
  readonly client: OpenAI;
  /** Every engine step since start. */
  readonly steps: StepStats[];
  /** Every finished scheduler request since start. */
  readonly finished: RequestStats[];
  /** Resolves with the next finished request that matches (or one already finished). */
  waitForFinished(predicate: (stats: RequestStats) => boolean): Promise<RequestStats>;
  close(): Promise<void>;
}

/** A listening pagoda on a free loopback port, serving stories260K, with an `openai` client pointed at it. */
export async function startModelServer(flags: string[] = []): Promise<ModelServer> {
  const config = loadConfig({
    argv: ["--model", STORIES_MODEL, "--threads", "1", "--gpu", "false", "--log-level", "silent", ...flags],
    env: {},
    cwd: repoRoot,
  });
  const serving = new ServingState();
  const app = await buildApp({ serving, serverSeed: config.seed ?? null });
  const steps: StepStats[] = [];
  const finished: RequestStats[] = [];
  const waiters: { predicate: (stats: RequestStats) => boolean; resolve: (stats: RequestStats) => void }[] = [];
  const onRequestFinished = (stats: RequestStats): void => {
    app.serverMetrics.observeRequest(stats);
    finished.push(stats);
    for (const waiter of waiters.filter((candidate) => candidate.predicate(stats))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(stats);
    }
  };
  const waitForFinished = (predicate: (stats: RequestStats) => boolean): Promise<RequestStats> => {
    const done = finished.find(predicate);
    if (done !== undefined) return Promise.resolve(done);
    return new Promise((resolve) => waiters.push({ predicate, resolve }));
  };
  const runtime = await loadRuntime(config, app.log, {
    onStep: (stats) => {
      app.serverMetrics.observeStep(stats);
      steps.push(stats);
    },
    onRequestFinished,
  });
  serving.markReady(runtime);
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("server has no TCP address");
  const baseUrl = `http://127.0.0.1:${address.port}`;
  const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
  return { app, runtime, baseUrl, client, steps, finished, waitForFinished, close: () => app.close() };
}

/**
 * Streams a greedy completion of `maxTokens` (ignore_eos) that keeps running, so its KV cells stay held, until the
 * returned `stop` aborts it; `done` settles once the response is over either way.
 */
export function holdStream(
  server: ModelServer,
  prompt: string,
  maxTokens: number,
): { readonly stop: () => void; readonly done: Promise<unknown> } {
  const controller = new AbortController();
  const done = fetch(`${server.baseUrl}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true }),
    signal: controller.signal,
  })
    .then((response) => response.text())
    .catch(() => undefined);
  return { stop: () => controller.abort(), done };
}
