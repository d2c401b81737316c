/**
 * Loads the model behind a `ServingState`: engine, scheduler and engine loop, wired with the configuration.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Config } from "./config/config-schema.ts";
import { LlamaEngine } from "./engine/llama-engine.ts";
import { resolveModel } from "./model/resolve-model.ts";
import { EngineLoop, type StepStats } from "./scheduler/engine-loop.ts";
import { Scheduler, type RequestStats } from "./scheduler/scheduler.ts";
import type { Runtime } from "./server/serving-state.ts";

export interface RuntimeHooks {
  /** Receives every engine step's stats (metrics, benchmarks, tests). */
  readonly onStep?: (stats: StepStats) => void;
  /** Receives every finished request's stats. */
  readonly onRequestFinished?: (stats: RequestStats) => void;
  /** The engine loop died; every request was failed. The process should exit so a supervisor restarts it. */
  readonly onFatal?: (error: Error) => void;
}

export async function loadRuntime(config: Config, log: FastifyBaseLogger, hooks: RuntimeHooks = {}): Promise<Runtime> {
  const model = await resolveModel(config);
  if (model.isSynthetic) {
    log.warn(
      { modelPath: model.path },
      "No model configured and none found in the models folder: serving a synthetic model with RANDOM weights. " +
        "Its output is meaningless. Point --model (or PAGODA_MODEL) at a real GGUF file, or put one in ./models.",
    );
  }
  log.info({ modelPath: model.path, alias: model.alias, threads: config.threads, parallel: config.parallel }, "loading model");
  const engine = await LlamaEngine.load({
    modelPath: model.path,
    threads: config.threads,
    numSequences: config.parallel,
    contextSize: config.ctxSize,
    // Every running sequence must be able to add its decode token to one step.
    batchSize: Math.max(config.batchSize, config.parallel),
    gpu: config.gpu,
    flashAttention: config.flashAttn,
    onNativeLog: (level, message) => log[level]({ source: "llama.cpp" }, message.trim()),
  });
  const scheduler = new Scheduler(engine, {
    maxNumRunning: config.parallel,
    maxNumBatchedTokens: Math.max(config.batchSize, config.parallel),
    maxNumWaiting: config.maxQueue,
    ...(hooks.onRequestFinished === undefined ? {} : { onRequestFinished: hooks.onRequestFinished }),
  });
  const loop = new EngineLoop(engine, scheduler, {
    onStepError: (error) => log.error({ err: error }, "engine step failed; its requests were failed"),
    ...(hooks.onStep === undefined ? {} : { onStep: hooks.onStep }),
    onFatal: (error) => {
      log.fatal({ err: error }, "the engine loop failed");
      hooks.onFatal?.(error);
    },
  });
  loop.start();
  log.info({ ...engine.info }, "model loaded");
  return { engine, loop, modelId: model.alias, createdSeconds: Math.floor(Date.now() / 1000) };
}
