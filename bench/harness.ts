/**
 * In-process benchmark harness: a runtime loaded from command-line flags (no HTTP), and a batch of requests
 * submitted to its engine loop at once, with each request's time to first token.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../src/config/load-config.ts";
import { greedySampling, type SamplingParams, type TokenId } from "../src/engine/engine.ts";
import { loadRuntime } from "../src/runtime.ts";
import type { StepStats } from "../src/scheduler/engine-loop.ts";
import type { RequestId } from "../src/scheduler/request.ts";
import { buildApp } from "../src/server/app.ts";
import { type Runtime, ServingState } from "../src/server/serving-state.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export const GREEDY: SamplingParams = greedySampling(1);

export interface Loaded {
  readonly runtime: Runtime;
  readonly steps: StepStats[];
  /** The server's address with `listen`, else null. */
  readonly baseUrl: string | null;
  close(): Promise<void>;
}

export interface LoadOptions {
  /** Listen on a free loopback port. Defaults to false. */
  readonly listen?: boolean;
  /** Feed every step and finished request to the app's metrics, as `npm start` does. Defaults to false. */
  readonly isObservingMetrics?: boolean;
}

/**
 * A runtime as `npm start` would build it from `flags`, quiet and on the CPU; every step's stats recorded. With
 * `listen`, its HTTP server listens on a free loopback port.
 */
export async function loadRuntimeWith(flags: string[], options: LoadOptions = {}): Promise<Loaded> {
  const config = loadConfig({ argv: ["--gpu", "false", "--log-level", "silent", ...flags], env: {}, cwd: repoRoot });
  const steps: StepStats[] = [];
  const serving = new ServingState();
  const app = await buildApp({ serving });
  const isObserving = options.isObservingMetrics === true;
  const runtime = await loadRuntime(config, app.log, {
    onStep: (stats) => {
      steps.push(stats);
      if (isObserving) app.serverMetrics.observeStep(stats);
    },
    ...(isObserving ? { onRequestFinished: (stats) => app.serverMetrics.observeRequest(stats) } : {}),
  });
  serving.markReady(runtime);
  let baseUrl: string | null = null;
  if (options.listen === true) {
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === "string") throw new Error("the server has no TCP address");
    baseUrl = `http://127.0.0.1:${address.port}`;
  }
  return { runtime, steps, baseUrl, close: () => app.close() };
}

export interface Timing {
  readonly firstTokenMs: number;
  readonly numTokens: number;
  readonly tokens: TokenId[];
}

/**
 * Submits every prompt at once to the engine loop; resolves when all finished with `length` (with `ignoreEos`, the
 * default) or with `length` or `stop`. `maxTokens` is one limit for all, or one per prompt.
 */
export async function runAll(
  runtime: Runtime,
  prompts: readonly TokenId[][],
  maxTokens: number | readonly number[],
  sampling: SamplingParams = GREEDY,
  ignoreEos = true,
): Promise<{ timings: Timing[]; durationMs: number }> {
  const startMs = performance.now();
  const timings = await Promise.all(
    prompts.map(
      (tokens, index) =>
        new Promise<Timing>((resolve, reject) => {
          let firstTokenMs = -1;
          const generated: TokenId[] = [];
          const isAccepted = runtime.loop.submit({
            id: `bench-${index}-${startMs}` as RequestId,
            promptTokens: tokens,
            params: {
              maxTokens: typeof maxTokens === "number" ? maxTokens : (maxTokens[index] ?? 0),
              sampling,
              stopStrings: [],
              stopTokens: [],
              ignoreEos,
            },
            sink: {
              onDelta: (delta) => {
                if (firstTokenMs < 0) firstTokenMs = performance.now() - startMs;
                generated.push(...delta.tokens);
              },
              onFinish: (output) =>
                output.finishReason === "length" || (!ignoreEos && output.finishReason === "stop")
                  ? resolve({ firstTokenMs, numTokens: output.numOutputTokens, tokens: generated })
                  : reject(output.error ?? new Error(output.finishReason)),
            },
            arrivalAtMs: startMs,
          });
          if (!isAccepted) reject(new Error("queue full"));
        }),
    ),
  );
  return { timings, durationMs: performance.now() - startMs };
}
