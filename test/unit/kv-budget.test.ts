import assert from "node:assert/strict";
import { test } from "node:test";
import { contextSizeForKvBudget } from "../../src/plan/kv-budget.ts";

test("a KV budget gives whole multiples of 256 tokens per sequence, capped at the context size", () => {
  // stories260K: 640 bytes per token; 8 sequences of 512 tokens take 2,621,440 bytes.
  assert.equal(contextSizeForKvBudget(640, 8, 3_000_000, 2048), 512);
  assert.equal(contextSizeForKvBudget(640, 8, 2_621_440, 2048), 512, "an exact fit is used whole");
  assert.equal(contextSizeForKvBudget(640, 8, 2_621_439, 2048), 256);
  assert.equal(contextSizeForKvBudget(640, 8, 1e12, 2048), 2048);
});

test("a KV budget too small for 256 tokens per sequence is refused", () => {
  assert.equal(contextSizeForKvBudget(640, 8, 1_310_719, 2048), null);
  assert.equal(contextSizeForKvBudget(640, 8, 1_310_720, 2048), 256);
});
