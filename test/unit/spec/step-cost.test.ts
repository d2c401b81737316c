import assert from "node:assert/strict";
import { test } from "node:test";
import { StepCostModel } from "../../../src/spec/step-cost.ts";

test("the step cost model starts decode-bound and converges to the measured line", () => {
  const model = new StepCostModel();
  assert.ok(model.stepMs(2) < 2 * model.stepMs(1), "a fixed part dominates before any measurement");
  for (let step = 0; step < 2000; step++) {
    const numTokens = 1 + (step % 32);
    model.observe(numTokens, 5 + 0.5 * numTokens);
  }
  assert.ok(Math.abs(model.stepMs(1) - 5.5) < 0.05, `${model.stepMs(1)}`);
  assert.ok(Math.abs(model.stepMs(100) - 55) < 0.5, `${model.stepMs(100)}`);
});

test("steps of one size keep a fixed part instead of a line through the origin", () => {
  const model = new StepCostModel();
  for (let step = 0; step < 2000; step++) model.observe(8, 4);
  assert.ok(Math.abs(model.stepMs(8) - 4) < 0.01);
  assert.ok(model.stepMs(9) < (4 * 9) / 8, "one more token costs less than a proportional share");
});
