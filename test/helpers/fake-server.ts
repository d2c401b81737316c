import type { FastifyInstance } from "fastify";
import { FakeEngine, type FakeEngineOptions } from "../../src/engine/fake-engine.ts";
import { EngineLoop } from "../../src/scheduler/engine-loop.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { type AppDeps, buildApp } from "../../src/server/app.ts";
import { type PooledModelRuntime, ServingState } from "../../src/server/serving-state.ts";

export const FAKE_MODEL_ID = "fake-model";

export interface FakeServer {
  readonly app: FastifyInstance;
  readonly engine: FakeEngine;
  readonly loop: EngineLoop;
  readonly serving: ServingState;
}

/** A fake model served beside the generator, as `--embedding-model` and `--rerank-model` serve real ones. */
export interface FakePooledModel {
  readonly modelId: string;
  readonly role: PooledModelRuntime["role"];
  readonly engineOptions?: FakeEngineOptions;
}

export async function startFakeServer(
  engineOptions: FakeEngineOptions = {},
  appOptions: Partial<AppDeps> & {
    maxNumWaiting?: number;
    queueTimeoutMs?: number;
    pooledModels?: readonly FakePooledModel[];
  } = {},
): Promise<FakeServer> {
  const engine = new FakeEngine(engineOptions);
  const serving = new ServingState();
  const app = await buildApp({ serving, ...appOptions });
  const scheduler = new Scheduler(engine, {
    maxNumSequences: engine.info.numSequences,
    maxNumBatchedTokens: engine.info.batchSize,
    maxNumWaiting: appOptions.maxNumWaiting ?? 64,
    queueTimeoutMs: appOptions.queueTimeoutMs ?? 0,
  });
  const loop = new EngineLoop(engine, scheduler, {
    onStep: (stats) => app.serverMetrics.observeStep(stats),
    onRequestFinished: (stats) => app.serverMetrics.observeRequest(stats),
  });
  serving.markReady({
    engine,
    loop,
    modelId: FAKE_MODEL_ID,
    createdSeconds: 1_700_000_000,
    pooledModels: (appOptions.pooledModels ?? []).map((pooled) => ({
      modelId: pooled.modelId,
      role: pooled.role,
      createdSeconds: 1_700_000_000,
      engine: new FakeEngine({ ...(pooled.role === "rerank" ? { pooling: "rank" } : {}), ...pooled.engineOptions }),
    })),
    dispose: () => engine.dispose(),
  });
  loop.start();
  return { app, engine, loop, serving };
}

/** Splits an SSE body into its `data:` payloads. */
export function parseSse(body: string): string[] {
  return body
    .split("\n\n")
    .filter((frame) => frame.length > 0)
    .map((frame) => {
      if (!frame.startsWith("data: ")) throw new Error(`not an SSE data frame: ${JSON.stringify(frame)}`);
      return frame.slice("data: ".length);
    });
}
