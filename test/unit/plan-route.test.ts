import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { Registry } from "prom-client";
import { ConstraintCompiler } from "../../src/constrain/constraint-compiler.ts";
import { FakeEngine } from "../../src/engine/fake-engine.ts";
import { writeSyntheticLlama } from "../../src/gguf/synthetic-model.ts";
import { ServerMetrics } from "../../src/metrics/server-metrics.ts";
import { EngineLoop } from "../../src/scheduler/engine-loop.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { installErrorHandlers } from "../../src/server/error-handler.ts";
import { type PlanSource, planRoute } from "../../src/server/routes/plan.ts";
import { ServingState } from "../../src/server/serving-state.ts";

let dir: string;
let modelPath: string;
const apps: FastifyInstance[] = [];
const metrics: ServerMetrics[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-plan-route-"));
  modelPath = join(dir, "tiny.gguf");
  await writeSyntheticLlama(modelPath, { vocabSize: 512, embeddingLength: 64, blockCount: 2, feedForwardLength: 128 });
});

after(async () => {
  await Promise.all(apps.map((app) => app.close()));
  for (const m of metrics) m.dispose();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function startApp(planSource: PlanSource | null, isReady = true): Promise<FastifyInstance> {
  const serving = new ServingState();
  if (isReady) {
    const engine = new FakeEngine();
    const scheduler = new Scheduler(engine, { maxNumSequences: 1, maxNumBatchedTokens: 16, maxNumWaiting: 1 });
    serving.markReady({
      engine,
      loop: new EngineLoop(engine, scheduler),
      modelId: "tiny",
      createdSeconds: 0,
      planSource,
    });
  }
  const app = Fastify({ logger: false });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandlers(app);
  const serverMetrics = new ServerMetrics(new Registry());
  metrics.push(serverMetrics);
  await app.register(planRoute, {
    serving,
    serverSeed: null,
    nextRequestOrdinal: () => 0,
    metrics: serverMetrics,
    constraints: new ConstraintCompiler(),
  });
  apps.push(app);
  return app;
}

const source = (): PlanSource => ({ modelPath, ctxSize: 1000, parallel: 2, batchSize: 256, kvType: "f16" });

test("GET /v1/plan describes the served model with the server's context settings", async () => {
  const app = await startApp(source());
  const response = await app.inject({ method: "GET", url: "/v1/plan" });
  assert.equal(response.statusCode, 200, response.body);
  const plan = response.json() as Record<string, unknown> & { context: Record<string, unknown> };
  assert.equal(plan.object, "memory_plan");
  assert.equal(plan.model, "tiny");
  assert.equal(plan.architecture, "llama");
  assert.equal(plan.context.num_sequences, 2);
  assert.equal(plan.context.kv_cells_per_stream, 1024);
  assert.equal(plan.context.batch_size, 256);
  assert.equal(plan.kv_bytes_per_token, 256);
  assert.equal(plan.kv_bytes, 2 * 1024 * 256);
  assert.equal(
    plan.total_bytes,
    (plan.weights_bytes as number) +
      (plan.kv_bytes as number) +
      (plan.output_bytes as number) +
      (plan.compute_bytes as number),
  );
});

test("the plan is computed once per process and served from memory afterwards", async () => {
  const movable = join(dir, "movable.gguf");
  await writeSyntheticLlama(movable, { vocabSize: 512, embeddingLength: 64, blockCount: 2, feedForwardLength: 128 });
  const app = await startApp({ ...source(), modelPath: movable });
  const first = await app.inject({ method: "GET", url: "/v1/plan" });
  await rm(movable);
  const second = await app.inject({ method: "GET", url: "/v1/plan" });
  assert.equal(second.statusCode, 200, "the file is not read again");
  assert.deepEqual(second.json(), first.json());
});

test("GET /v1/plan answers 503 while the model loads and 404 when the server has no model file", async () => {
  const loading = await (await startApp(source(), false)).inject({ method: "GET", url: "/v1/plan" });
  assert.equal(loading.statusCode, 503);
  assert.equal(loading.headers["retry-after"], "5");

  const unknown = await (await startApp(null)).inject({ method: "GET", url: "/v1/plan" });
  assert.equal(unknown.statusCode, 404);
  assert.match((unknown.json() as { error: { message: string } }).error.message, /no memory plan/);
});

test("an unreadable model file is a 500 and is retried on the next request", async () => {
  const app = await startApp({ ...source(), modelPath: join(dir, "missing.gguf") });
  const failed = await app.inject({ method: "GET", url: "/v1/plan" });
  assert.equal(failed.statusCode, 500);
  assert.equal((failed.json() as { error: { code: string } }).error.code, "internal_error");
  await writeSyntheticLlama(join(dir, "missing.gguf"), {
    vocabSize: 512,
    embeddingLength: 64,
    blockCount: 2,
    feedForwardLength: 128,
  });
  assert.equal((await app.inject({ method: "GET", url: "/v1/plan" })).statusCode, 200);
});
