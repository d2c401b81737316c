import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededRandom } from "../../../src/engine/seeded-random.ts";
import { selectTopTokens, sortTokens } from "../../../src/spec/top-tokens.ts";

/** Best first: higher logit, then lower id. */
function referenceOrder(logits: Float32Array, ids: readonly number[]): number[] {
  return [...ids].sort((a, b) => {
    const la = logits[a] as number;
    const lb = logits[b] as number;
    return la === lb ? a - b : la > lb ? -1 : 1;
  });
}

test("selectTopTokens returns the k best, best first, the same as a full sort", () => {
  const random = new SeededRandom(9);
  for (let trial = 0; trial < 200; trial += 1) {
    const size = 1 + Math.floor(random.next() * 500);
    const logits = Float32Array.from({ length: size }, () => Math.floor(random.next() * 30));
    const k = Math.floor(random.next() * (size + 3));
    const sorted = referenceOrder(
      logits,
      Array.from({ length: size }, (_, token) => token),
    );
    assert.deepEqual(Array.from(selectTopTokens(logits, null, k)), sorted.slice(0, k));
    const subset = Int32Array.from(sorted.filter((token) => token % 3 !== 0).sort((a, b) => a - b));
    const expectedSubset = sorted.filter((token) => token % 3 !== 0).slice(0, k);
    assert.deepEqual(Array.from(selectTopTokens(logits, subset, k)), expectedSubset);
  }
});

test("sortTokens orders negative, zero, signed-zero, tied and −∞ logits exactly like a comparator sort", () => {
  const logits = Float32Array.from([-0, 0, -1.5, 3, -Infinity, 3, -1e-30, 1e-30, -3.4e38, 3.4e38, -1.5, -Infinity]);
  const all = Array.from({ length: logits.length }, (_, token) => token);
  assert.deepEqual(Array.from(sortTokens(logits, null)), referenceOrder(logits, all));
  assert.deepEqual(Array.from(sortTokens(logits, Int32Array.from([11, 4, 2, 10, 0, 1]))), [0, 1, 2, 10, 4, 11]);
  const random = new SeededRandom(31);
  const noisy = Float32Array.from({ length: 5000 }, () => Math.round((random.next() - 0.5) * 200) / 7);
  assert.deepEqual(
    Array.from(sortTokens(noisy, null)),
    referenceOrder(
      noisy,
      Array.from({ length: 5000 }, (_, token) => token),
    ),
  );
});
