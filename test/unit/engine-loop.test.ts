import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { FakeEngine } from "../../src/engine/fake-engine.ts";
import { EngineLoop } from "../../src/scheduler/engine-loop.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { makeRequest } from "../helpers/requests.ts";

test("a request submitted while the loop plans a step with nothing to run is run, not slept through", {
  timeout: 10_000,
}, async () => {
  const engine = new FakeEngine();
  const scheduler = new Scheduler(engine, { maxNumSequences: 4, maxNumBatchedTokens: 64, maxNumWaiting: 4 });
  const loop = new EngineLoop(engine, scheduler);
  const late = makeRequest("late", [10, 11], { maxTokens: 2 });
  // The loop awaits prepareDrafts between planning a step and deciding to sleep: submit right there.
  const prepareDrafts = scheduler.prepareDrafts.bind(scheduler);
  mock.method(scheduler, "prepareDrafts", (plan: Parameters<Scheduler["prepareDrafts"]>[0]) => {
    if (plan.scheduled.length === 0 && !scheduler.hasWork()) {
      const { id, promptTokens, params } = late.request;
      assert.equal(loop.submit({ id, promptTokens, params, sink: late.sink }), true);
    }
    return prepareDrafts(plan);
  });
  loop.start();
  const finished = await late.sink.done;
  assert.equal(finished.finishReason, "length");
  assert.equal(finished.numOutputTokens, 2);
  await loop.stop();
});
