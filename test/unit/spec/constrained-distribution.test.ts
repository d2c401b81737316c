import assert from "node:assert/strict";
import { test } from "node:test";
import type { TokenId } from "../../../src/engine/engine.ts";
import {
  applyBias,
  type TargetSamplingConfig,
  toConstrainedDistribution,
  toDistribution,
} from "../../../src/spec/target-distribution.ts";

const PLAIN: TargetSamplingConfig = {
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
};

const LOGITS = Float32Array.from([2, 1.5, 1, 0.5, 0, -1]);
const ALLOWED = Uint8Array.from([0, 1, 0, 1, 1, 0]);

function close(actual: Float32Array, expected: readonly number[]): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++)
    assert.ok(
      Math.abs((actual[i] as number) - (expected[i] as number)) < 1e-6,
      `token ${i}: ${actual[i]} vs ${expected[i]}`,
    );
}

test("without truncation the constrained distribution is the softmax over the allowed tokens", () => {
  const probs = toConstrainedDistribution(LOGITS, PLAIN, [], ALLOWED);
  const weights = [0, Math.exp(1.5), 0, Math.exp(0.5), Math.exp(0), 0];
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  close(
    probs,
    weights.map((weight) => weight / total),
  );
});

test("with top-k the constrained distribution is the native sampler's sample-then-resample mixture", () => {
  const config = { ...PLAIN, topK: 2 };
  const probs = toConstrainedDistribution(LOGITS, config, [], ALLOWED);
  // Unconstrained top-2 keeps tokens 0 and 1; token 0 is rejected, so its mass resamples from the masked top-2
  // (tokens 1 and 3).
  const free = toDistribution(LOGITS, config, []);
  const masked = [0, Math.exp(1.5), 0, Math.exp(0.5), 0, 0];
  const maskedTotal = masked.reduce((sum, weight) => sum + weight, 0);
  const rejected = free[0] as number;
  close(probs, [
    0,
    (free[1] as number) + (rejected * masked[1]!) / maskedTotal,
    0,
    (rejected * masked[3]!) / maskedTotal,
    0,
    0,
  ]);
  const sum = probs.reduce((total, p) => total + p, 0);
  assert.ok(Math.abs(sum - 1) < 1e-6);
});

test("the mixture matches a simulation of sampling, checking the grammar, and resampling masked", () => {
  const config = { ...PLAIN, topP: 0.7, temperature: 0.8 };
  const probs = toConstrainedDistribution(LOGITS, config, [], ALLOWED);
  const free = toDistribution(LOGITS, config, []);
  const masked = toDistribution(
    Float32Array.from(LOGITS, (logit, token) => (ALLOWED[token] === 1 ? logit : -Infinity)),
    config,
    [],
  );
  // Exact enumeration of the two-draw process.
  const simulated = new Float64Array(LOGITS.length);
  for (let first = 0; first < LOGITS.length; first++) {
    if (ALLOWED[first] === 1) simulated[first]! += free[first] as number;
    else
      for (let second = 0; second < LOGITS.length; second++)
        simulated[second]! += (free[first] as number) * (masked[second] as number);
  }
  close(probs, [...simulated]);
});

test("greedy under a grammar is the argmax among the allowed tokens", () => {
  const probs = toConstrainedDistribution(LOGITS, { ...PLAIN, temperature: 0 }, [], ALLOWED);
  close(probs, [0, 1, 0, 0, 0, 0]);
});

test("logit biases are added before anything else, as the native chain adds them", () => {
  const biased = applyBias(LOGITS, { ...PLAIN, logitBias: new Map([[5 as TokenId, 100]]) });
  assert.equal(biased[5], 99);
  assert.equal(LOGITS[5], -1, "the caller's logits are left as they were");
  const probs = toDistribution(LOGITS, { ...PLAIN, temperature: 0, logitBias: new Map([[5 as TokenId, 100]]) }, []);
  assert.equal(probs[5], 1);
});
