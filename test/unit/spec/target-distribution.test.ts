import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededRandom } from "../../../src/engine/seeded-random.ts";
import {
  argmax,
  sampleFrom,
  type TargetSamplingConfig,
  toDistribution,
} from "../../../src/spec/target-distribution.ts";
import { asTokenIds, tokenIds } from "../../helpers/ids.ts";

const PLAIN: TargetSamplingConfig = {
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
};

function config(overrides: Partial<TargetSamplingConfig>): TargetSamplingConfig {
  return { ...PLAIN, ...overrides };
}

/** Logits whose temperature-1 softmax is proportional to `weights`. */
function logitsOf(weights: readonly number[]): Float32Array {
  return Float32Array.from(weights, (weight) => (weight === 0 ? -Infinity : Math.log(weight)));
}

/** Normalises `weights` (for expected values). */
function normalized(weights: readonly number[]): number[] {
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  return weights.map((weight) => weight / total);
}

function assertProbs(actual: Float32Array, expected: readonly number[], message?: string): void {
  assert.equal(actual.length, expected.length, message);
  expected.forEach((value, index) => {
    const got = actual[index] as number;
    if (value === 0) assert.equal(got, 0, `${message ?? ""} token ${index}: ${got} should be exactly 0`);
    else assert.ok(Math.abs(got - value) < 1e-6, `${message ?? ""} token ${index}: ${got} vs ${value}`);
  });
}

// Softmax at temperature 1 of these is [0.4, 0.3, 0.2, 0.1].
const FOUR = logitsOf([4, 3, 2, 1]);

test("argmax picks the highest logit and the lowest id among ties", () => {
  assert.equal(argmax(Float32Array.from([1, 3, 3, 2])), 1);
  assert.equal(argmax(Float32Array.from([-5])), 0);
  assert.equal(argmax(Float32Array.from([-Infinity, -1, -Infinity])), 1);
  assert.equal(argmax(Float32Array.from([NaN, 0.5, 0.5])), 1, "a NaN never wins over a number");
});

test("temperature 0 (or below) is a one-hot at the argmax, ignoring top-k, top-p and min-p", () => {
  const logits = Float32Array.from([1, 3, 3, 2]);
  assertProbs(toDistribution(logits, config({ temperature: 0 }), []), [0, 1, 0, 0]);
  assertProbs(toDistribution(logits, config({ temperature: -1, topK: 1, topP: 0.1, minP: 0.9 }), []), [0, 1, 0, 0]);
});

test("temperature alone scales the logits before the softmax", () => {
  assertProbs(toDistribution(FOUR, PLAIN, []), [0.4, 0.3, 0.2, 0.1]);
  assertProbs(toDistribution(FOUR, config({ temperature: 0.5 }), []), normalized([16, 9, 4, 1]));
  assertProbs(toDistribution(FOUR, config({ temperature: 2 }), []), normalized([2, Math.sqrt(3), Math.sqrt(2), 1]));
});

test("top-k alone keeps the k best tokens, the lower id among equal logits, and k ≤ 0 or k ≥ vocab is off", () => {
  assertProbs(toDistribution(FOUR, config({ topK: 2 }), []), [4 / 7, 3 / 7, 0, 0]);
  assertProbs(toDistribution(FOUR, config({ topK: 0 }), []), [0.4, 0.3, 0.2, 0.1]);
  assertProbs(toDistribution(FOUR, config({ topK: 9 }), []), [0.4, 0.3, 0.2, 0.1]);
  assertProbs(toDistribution(logitsOf([1, 2, 2, 1]), config({ topK: 1 }), []), [0, 1, 0, 0]);
});

test("top-p alone keeps the smallest best-first prefix reaching p, at least one token, and p = 1 is off", () => {
  assertProbs(toDistribution(FOUR, config({ topP: 0.6 }), []), [4 / 7, 3 / 7, 0, 0]);
  assertProbs(toDistribution(FOUR, config({ topP: 0.85 }), []), normalized([4, 3, 2, 0]));
  assertProbs(toDistribution(FOUR, config({ topP: 0.95 }), []), [0.4, 0.3, 0.2, 0.1]);
  assertProbs(toDistribution(FOUR, config({ topP: 0.3 }), []), [1, 0, 0, 0]);
  assertProbs(toDistribution(FOUR, config({ topP: 0 }), []), [1, 0, 0, 0], "min_keep = 1");
  assertProbs(toDistribution(FOUR, config({ topP: 1 }), []), [0.4, 0.3, 0.2, 0.1]);
});

test("min-p alone keeps tokens with p ≥ min_p × p_max, and at least the best one", () => {
  // 0.3 × 0.4 = 0.12: token 3 (0.1) goes.
  assertProbs(toDistribution(FOUR, config({ minP: 0.3 }), []), normalized([4, 3, 2, 0]));
  // 0.76 × 0.4 = 0.304: token 1 (0.3) goes too.
  assertProbs(toDistribution(FOUR, config({ minP: 0.76 }), []), normalized([4, 0, 0, 0]));
  assertProbs(toDistribution(FOUR, config({ minP: 2 }), []), [1, 0, 0, 0], "min_keep = 1");
  assertProbs(toDistribution(FOUR, config({ minP: 0 }), []), [0.4, 0.3, 0.2, 0.1]);
});

test("top-p is judged at temperature 1, before temperature reshapes the survivors", () => {
  // At T = 1 the best two reach 0.7 ≥ 0.65; at T = 2 they would reach only 0.607 and keep a third token.
  assertProbs(toDistribution(FOUR, config({ topP: 0.65, temperature: 2 }), []), normalized([2, Math.sqrt(3), 0, 0]));
});

test("min-p is judged at temperature 1, before temperature flattens the ratios", () => {
  // At T = 2 token 3's ratio to the best would be 0.5 ≥ 0.3 and it would stay.
  assertProbs(
    toDistribution(FOUR, config({ minP: 0.3, temperature: 2 }), []),
    normalized([2, Math.sqrt(3), Math.sqrt(2), 0]),
  );
});

test("top-p renormalises over the top-k survivors", () => {
  // After top-3 the probabilities are 4/9, 3/9, 2/9: two tokens reach 0.75. Over all four, three would be needed.
  assertProbs(toDistribution(FOUR, config({ topK: 3, topP: 0.75 }), []), [4 / 7, 3 / 7, 0, 0]);
});

test("presence and frequency penalties subtract presence × [count > 0] + frequency × count over the history", () => {
  const logits = Float32Array.from([2, 1, 0, 0]);
  const penalties = { presencePenalty: 0.5, frequencyPenalty: 0.25 };
  // Token 0 appeared twice: 2 − (0.5 + 0.5) = 1; token 1 once: 1 − (0.5 + 0.25) = 0.25.
  const expected = normalized([Math.exp(1), Math.exp(0.25), 1, 1]);
  assertProbs(toDistribution(logits, config(penalties), tokenIds(0, 0, 1)), expected);
  assertProbs(toDistribution(logits, config(penalties), []), normalized([Math.exp(2), Math.exp(1), 1, 1]));
  assert.deepEqual(Array.from(logits), [2, 1, 0, 0], "the caller's logits are not modified");
  // Negative penalties encourage repetition.
  assertProbs(
    toDistribution(Float32Array.from([0, 0]), config({ presencePenalty: -1, frequencyPenalty: 0 }), tokenIds(1)),
    normalized([1, Math.E]),
  );
});

test("penalties apply before greedy selection and before top-k", () => {
  const logits = Float32Array.from([1, 0.9, 0]);
  assertProbs(toDistribution(logits, config({ temperature: 0, presencePenalty: 0.5 }), tokenIds(0)), [0, 1, 0]);
  assertProbs(toDistribution(logits, config({ topK: 1, presencePenalty: 0.5 }), tokenIds(0)), [0, 1, 0]);
});

test("every transform together: penalties, top-k, top-p, min-p, then temperature", () => {
  // Weights 8, 6, 4, 3, 1.5, 1 (logits ln w); token 0 appeared once and loses ln 4 → weight 2.
  const logits = logitsOf([8, 6, 4, 3, 1.5, 1]);
  const sampling = config({ presencePenalty: Math.log(4), topK: 4, topP: 0.8, minP: 0.45, temperature: 0.5 });
  // Penalised weights 2, 6, 4, 3, 1.5, 1. Top-4: tokens 1, 2, 3, 0 with weights 6, 4, 3, 2 over 15.
  // Top-p 0.8: 6/15 = 0.4, 10/15 = 0.667, 13/15 = 0.867 ≥ 0.8 → tokens 1, 2, 3.
  // Min-p 0.45: keep weight ≥ 2.7 → tokens 1, 2, 3 again. T = 0.5 squares the weights: 36, 16, 9.
  assertProbs(toDistribution(logits, sampling, tokenIds(0)), normalized([0, 36, 16, 9, 0, 0]));
});

test("−∞ logits get probability 0, and logits with no distribution are rejected", () => {
  assertProbs(toDistribution(logitsOf([0, 1, 3]), PLAIN, []), [0, 0.25, 0.75]);
  assert.throws(() => toDistribution(Float32Array.from([-Infinity, -Infinity]), PLAIN, []), RangeError);
  assert.throws(() => toDistribution(Float32Array.from([0, NaN]), PLAIN, []), RangeError);
  assert.throws(() => toDistribution(Float32Array.from([0, Infinity]), PLAIN, []), RangeError);
  assert.throws(() => toDistribution(new Float32Array(0), PLAIN, []), RangeError);
  assert.throws(
    () => toDistribution(FOUR, config({ presencePenalty: 1 }), tokenIds(4)),
    RangeError,
    "history token out of range",
  );
});

test("sampleFrom inverts the CDF and never returns a zero-probability token", () => {
  const probs = Float32Array.from([0.25, 0, 0.5, 0.25]);
  assert.equal(sampleFrom(probs, 0), 0);
  assert.equal(sampleFrom(probs, 0.2499), 0);
  assert.equal(sampleFrom(probs, 0.25), 2);
  assert.equal(sampleFrom(probs, 0.7499), 2);
  assert.equal(sampleFrom(probs, 0.75), 3);
  assert.equal(sampleFrom(probs, 1 - 2 ** -32), 3);
  assert.equal(sampleFrom(Float32Array.from([0.5, 0.5, 0, 0]), 1 - 2 ** -32), 1);
  assert.equal(sampleFrom(Float32Array.from([0, 0, 1e-30, 0]), 0.999), 2);
  assert.equal(sampleFrom(Float32Array.from([1, 3]), 0.2), 0, "weights need not be normalised");
  assert.equal(sampleFrom(Float32Array.from([1, 3]), 0.25), 1);
  assert.throws(() => sampleFrom(probs, 1), RangeError);
  assert.throws(() => sampleFrom(Float32Array.from([0.5, -0.1]), 0.5), RangeError);
  assert.throws(() => sampleFrom(Float32Array.from([0, 0]), 0.5), RangeError);
});

/** The pipeline spelled out naively (a full sort at every stage) to check the optimised one against. */
function referenceDistribution(
  logits: Float32Array,
  sampling: TargetSamplingConfig,
  history: readonly number[],
): number[] {
  const values = Array.from(logits);
  const counts = new Map<number, number>();
  for (const token of history) counts.set(token, (counts.get(token) ?? 0) + 1);
  for (const [token, count] of counts) {
    values[token] = Math.fround(
      (values[token] as number) -
        Math.fround(
          Math.fround(count * Math.fround(sampling.frequencyPenalty)) + Math.fround(sampling.presencePenalty),
        ),
    );
  }
  const result = new Array<number>(values.length).fill(0);
  let ranked = values.map((_, token) => token).sort((a, b) => (values[b] as number) - (values[a] as number) || a - b);
  if (sampling.temperature <= 0) {
    result[ranked[0] as number] = 1;
    return result;
  }
  if (sampling.topK > 0) ranked = ranked.slice(0, sampling.topK);
  if (sampling.topP < 1) {
    const best = values[ranked[0] as number] as number;
    const total = ranked.reduce((sum, token) => sum + Math.exp((values[token] as number) - best), 0);
    let cumulative = 0;
    const index = ranked.findIndex((token) => {
      cumulative += Math.exp((values[token] as number) - best) / total;
      return cumulative >= sampling.topP;
    });
    if (index >= 0) ranked = ranked.slice(0, index + 1);
  }
  if (sampling.minP > 0) {
    const best = values[ranked[0] as number] as number;
    const kept = ranked.filter((token) => (values[token] as number) >= best + Math.log(sampling.minP));
    ranked = kept.length > 0 ? kept : ranked.slice(0, 1);
  }
  const best = values[ranked[0] as number] as number;
  const total = ranked.reduce(
    (sum, token) => sum + Math.exp(((values[token] as number) - best) / sampling.temperature),
    0,
  );
  for (const token of ranked)
    result[token] = Math.exp(((values[token] as number) - best) / sampling.temperature) / total;
  return result;
}

test("random configurations agree with a naive full-sort reference, including top-p windows beyond 256 tokens", () => {
  const random = new SeededRandom(2024);
  for (let trial = 0; trial < 300; trial += 1) {
    const vocabSize = trial % 3 === 0 ? 3000 : 1 + Math.floor(random.next() * 40);
    // Small spreads make top-p need thousands of tokens; integer-ish logits make ties common.
    const spread = [0.01, 1, 8][trial % 3] as number;
    const logits = Float32Array.from({ length: vocabSize }, () => (Math.round(random.next() * 20) / 20) * spread);
    const history = asTokenIds(
      Array.from({ length: Math.floor(random.next() * 6) }, () => Math.floor(random.next() * vocabSize)),
    );
    const sampling: TargetSamplingConfig = {
      temperature: [0, 0.3, 1, 1.7][Math.floor(random.next() * 4)] as number,
      topK: random.next() < 0.5 ? 0 : 1 + Math.floor(random.next() * vocabSize),
      topP: random.next() < 0.4 ? 1 : random.next(),
      minP: random.next() < 0.5 ? 0 : random.next() * 0.5,
      presencePenalty: random.next() < 0.5 ? 0 : random.next(),
      frequencyPenalty: random.next() < 0.5 ? 0 : random.next() * 0.5,
    };
    const actual = toDistribution(logits, sampling, history);
    const expected = referenceDistribution(logits, sampling, history);
    const sum = actual.reduce((total, value) => total + value, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `trial ${trial}: sums to ${sum}`);
    expected.forEach((value, token) => {
      const got = actual[token] as number;
      assert.ok(
        value === 0 ? got === 0 : Math.abs(got - value) < 1e-6,
        `trial ${trial} token ${token}: ${got} vs ${value} (${JSON.stringify(sampling)})`,
      );
    });
  }
});

test("top-p beyond the first 256 tokens keeps the lowest ids among equal logits", () => {
  const probs = toDistribution(new Float32Array(3000), config({ topP: 0.5 }), []);
  const kept = probs.reduce((count, p) => count + (p > 0 ? 1 : 0), 0);
  assert.equal(kept, 1500);
  assert.ok(probs.subarray(0, 1500).every((p) => Math.abs(p - 1 / 1500) < 1e-9));
  assert.ok(probs.subarray(1500).every((p) => p === 0));
});

/** The lengths of every array and typed array sorted while `run` runs. */
function sortedLengths(run: () => void): number[] {
  const typedArrayPrototype = Object.getPrototypeOf(Int32Array.prototype) as { sort: (...args: unknown[]) => unknown };
  const originalTypedSort = typedArrayPrototype.sort;
  const originalArraySort = Array.prototype.sort;
  const lengths: number[] = [];
  typedArrayPrototype.sort = function (this: { length: number }, ...args: unknown[]) {
    lengths.push(this.length);
    return originalTypedSort.apply(this, args);
  };
  Array.prototype.sort = function <T>(this: T[], compare?: (a: T, b: T) => number) {
    lengths.push(this.length);
    return originalArraySort.call(this, compare) as T[];
  };
  try {
    run();
  } finally {
    typedArrayPrototype.sort = originalTypedSort;
    Array.prototype.sort = originalArraySort;
  }
  return lengths;
}

test("a 256k vocabulary with top_k 40 needs no full sort: nothing longer than k is ever sorted", () => {
  const random = new SeededRandom(5);
  const vocabSize = 256_000;
  const logits = Float32Array.from({ length: vocabSize }, () => random.next() * 30 - 15);
  const sampling = config({ topK: 40, topP: 0.95, minP: 0.05, temperature: 0.8 });
  for (const overrides of [{}, { topP: 1, minP: 0 }, { topP: 0.5 }]) {
    let probs: Float32Array = new Float32Array(0);
    const lengths = sortedLengths(() => {
      probs = toDistribution(logits, { ...sampling, ...overrides }, tokenIds(1, 2, 3));
    });
    assert.ok(
      lengths.every((length) => length <= 40),
      `sorted ${JSON.stringify(lengths)} (${JSON.stringify(overrides)})`,
    );
    assert.ok(probs.filter((p) => p > 0).length <= 40);
  }
  // Top-p alone ranks a window and a histogram bucket's worth, never the whole vocabulary.
  const lengths = sortedLengths(() => toDistribution(logits, { ...sampling, topK: 0, minP: 0 }, []));
  assert.ok(
    lengths.every((length) => length < vocabSize / 4),
    `sorted ${JSON.stringify(lengths)}`,
  );
});
