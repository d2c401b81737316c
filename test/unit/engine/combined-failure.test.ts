import assert from "node:assert/strict";
import test from "node:test";
import { combinedFailure } from "../../../src/engine/combined-failure.ts";

test("a single failure is returned as it was", () => {
  const failure = new TypeError("bad");
  assert.equal(combinedFailure([failure]), failure);
});

test("several failures become one AggregateError that leads with the first message and keeps them all", () => {
  const failures = [new Error("first"), new Error("second"), "third"];
  const combined = combinedFailure(failures);
  assert.ok(combined instanceof AggregateError);
  assert.equal(combined.message, "first (and 2 more failures)");
  assert.deepEqual(combined.errors, failures);
});

test("combining no failure is a bug", () => {
  assert.throws(() => combinedFailure([]), RangeError);
});
