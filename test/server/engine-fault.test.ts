/**
 * A fault of the engine loop itself (not of one step): every request fails, health turns 503, the fault is counted,
 * the server closes and the process exits 1. The loop's `onStep` hook runs outside the per-step error handling,
 * so making it throw is a deterministic loop fault; `exit` and `close` are recorded instead of ending the process.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeEngine } from "../../src/engine/fake-engine.ts";
import { EngineLoop } from "../../src/scheduler/engine-loop.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { buildApp } from "../../src/server/app.ts";
import { ENGINE_FAULT_EXIT_CODE, engineFaultHandler } from "../../src/server/engine-fault.ts";
import { ServingState } from "../../src/server/serving-state.ts";
import { FAKE_MODEL_ID } from "../helpers/fake-server.ts";
import { assertError, Deferred, okJson, postJson } from "./support.ts";

test("an engine loop fault fails the request, turns health to 503 and counts the fault before the process exits 1", async () => {
  const engine = new FakeEngine();
  const serving = new ServingState();
  const app = await buildApp({ serving });
  const events: string[] = [];
  const exited = new Deferred<number>();
  const observedBeforeExit: { health?: { status: number; body: unknown }; faults?: string } = {};
  let shouldFault = false;
  const loop = new EngineLoop(
    engine,
    new Scheduler(engine, { maxNumSequences: 4, maxNumBatchedTokens: 64, maxNumWaiting: 8 }),
    {
      onStep: () => {
        if (shouldFault) throw new Error("bookkeeping bug");
      },
      onFatal: engineFaultHandler({
        app,
        serving,
        close: async () => {
          events.push("close");
          // What a load balancer's probe and a scrape see between the fault and the exit.
          const health = await app.inject({ method: "GET", url: "/health" });
          observedBeforeExit.health = { status: health.statusCode, body: health.json() };
          const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
          observedBeforeExit.faults = /^pagoda_engine_faults_total (\d+)$/m.exec(metrics)?.[1];
          await app.close();
        },
        exit: (code) => {
          events.push(`exit ${code}`);
          exited.resolve(code);
        },
      }),
    },
  );
  serving.markReady({ engine, loop, modelId: FAKE_MODEL_ID, createdSeconds: 0, dispose: () => engine.dispose() });
  loop.start();

  okJson(await postJson(app, "/v1/completions", { model: FAKE_MODEL_ID, prompt: "ok", max_tokens: 2 }));
  const before = (await app.inject({ method: "GET", url: "/metrics" })).body;
  assert.match(before, /^pagoda_engine_faults_total 0$/m, "the counter exists from the start");

  shouldFault = true;
  const failed = await postJson(app, "/v1/completions", { model: FAKE_MODEL_ID, prompt: "boom", max_tokens: 5 });
  assertError(failed, { status: 500, type: "server_error", code: "engine_error", param: null });

  assert.equal(await exited.promise, ENGINE_FAULT_EXIT_CODE);
  assert.deepEqual(events, ["close", "exit 1"], "the server closes before the process exits");
  assert.deepEqual(observedBeforeExit.health, { status: 503, body: { status: "failed" } });
  assert.equal(observedBeforeExit.faults, "1");
  assert.equal(serving.status, "failed", "closing keeps the failed status");
  assert.equal(engine.isDisposed, true);
});

test("a second fault report while closing is ignored", async () => {
  const serving = new ServingState();
  const app = await buildApp({ serving });
  const exits: number[] = [];
  const closed = new Deferred();
  const onFatal = engineFaultHandler({
    app,
    serving,
    close: async () => {
      await app.close();
      closed.resolve();
    },
    exit: (code) => exits.push(code),
  });
  onFatal(new Error("first"));
  onFatal(new Error("second"));
  await closed.promise;
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(exits, [1]);
  const metrics = await app.metricsRegistry.getSingleMetricAsString("pagoda_engine_faults_total");
  assert.match(metrics, /^pagoda_engine_faults_total 1$/m);
});
