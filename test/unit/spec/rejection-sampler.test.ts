import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededRandom, type UniformSource } from "../../../src/engine/seeded-random.ts";
import { type VerifyResult, verifyGreedy, verifySampled } from "../../../src/spec/rejection-sampler.ts";
import { sampleFrom } from "../../../src/spec/target-distribution.ts";
import { tokenIds } from "../../helpers/ids.ts";

/** Hands out the given uniforms in order and fails the test if the verifier asks for more. */
class ScriptedRandom implements UniformSource {
  private index = 0;
  constructor(private readonly values: readonly number[]) {}
  next(): number {
    const value = this.values[this.index];
    if (value === undefined) throw new Error(`the verifier drew more than the ${this.values.length} scripted uniforms`);
    this.index += 1;
    return value;
  }
  get numDrawn(): number {
    return this.index;
  }
}

const probs = (...values: number[]): Float32Array => Float32Array.from(values);

test("greedy: all drafts matching the argmaxes are accepted and the last argmax is the bonus", () => {
  assert.deepEqual(verifyGreedy(tokenIds(5, 6, 7), tokenIds(5, 6, 7, 8)), {
    tokens: [5, 6, 7, 8],
    numAccepted: 3,
    kind: "bonus",
  });
});

test("greedy: a mismatch at the first draft yields only the target's argmax there", () => {
  assert.deepEqual(verifyGreedy(tokenIds(5, 6, 7), tokenIds(9, 6, 7, 8)), {
    tokens: [9],
    numAccepted: 0,
    kind: "recovered",
  });
});

test("greedy: a mismatch in the middle keeps the prefix and ignores later matches", () => {
  assert.deepEqual(verifyGreedy(tokenIds(5, 6, 7), tokenIds(5, 4, 7, 8)), {
    tokens: [5, 4],
    numAccepted: 1,
    kind: "recovered",
  });
});

test("greedy: no drafts yields the bonus argmax, and a wrong number of target positions throws", () => {
  assert.deepEqual(verifyGreedy(tokenIds(), tokenIds(3)), { tokens: [3], numAccepted: 0, kind: "bonus" });
  assert.throws(() => verifyGreedy(tokenIds(1, 2), tokenIds(1, 2)), RangeError);
});

test("sampled: a draft is accepted when u · q(x) < p(x), else the recovered token comes from max(0, p − q)", () => {
  const p = probs(0.2, 0.5, 0.3);
  const q = probs(0.5, 0.25, 0.25);
  // p(0)/q(0) = 0.4: u = 0.39 accepts; the bonus then draws u = 0.6 from p_1 = [0, 0, 1].
  const accepted = new ScriptedRandom([0.39, 0.6]);
  assert.deepEqual(
    verifySampled({ draftTokens: tokenIds(0), draftProbs: [q], targetProbs: [p, probs(0, 0, 1)], random: accepted }),
    { tokens: [0, 2], numAccepted: 1, kind: "bonus" },
  );
  assert.equal(accepted.numDrawn, 2);
  // u = 0.41 rejects. Residual [0, 0.25, 0.05] / 0.3: u = 0.8 → 0.24 falls in token 1, u = 0.9 → 0.27 in token 2.
  assert.deepEqual(
    verifySampled({
      draftTokens: tokenIds(0),
      draftProbs: [q],
      targetProbs: [p, probs(0, 0, 1)],
      random: new ScriptedRandom([0.41, 0.8]),
    }),
    { tokens: [1], numAccepted: 0, kind: "recovered" },
  );
  assert.deepEqual(
    verifySampled({
      draftTokens: tokenIds(0),
      draftProbs: [q],
      targetProbs: [p, probs(0, 0, 1)],
      random: new ScriptedRandom([0.41, 0.9]),
    }),
    { tokens: [2], numAccepted: 0, kind: "recovered" },
  );
});

test("sampled: a deterministic proposer's drafts are accepted with probability p(x), then the bonus follows p_K", () => {
  const targetProbs = [probs(0.2, 0.5, 0.3), probs(0.1, 0.1, 0.8), probs(0.6, 0.4, 0)];
  const random = new ScriptedRandom([0.3, 0.7, 0.65]);
  const result = verifySampled({ draftTokens: tokenIds(1, 2), draftProbs: [null, null], targetProbs, random });
  assert.deepEqual(result, { tokens: [1, 2, 1], numAccepted: 2, kind: "bonus" });
});

test("sampled: a deterministic proposer's rejected draft is recovered from p without the draft token", () => {
  const targetProbs = [probs(0.2, 0.5, 0.3), probs(1, 0, 0)];
  // u = 0.5 is not below p(1) = 0.5. Residual [0.2, 0, 0.3]: u = 0.5 → 0.25 lands in token 2.
  assert.deepEqual(
    verifySampled({
      draftTokens: tokenIds(1),
      draftProbs: [null],
      targetProbs,
      random: new ScriptedRandom([0.5, 0.5]),
    }),
    { tokens: [2], numAccepted: 0, kind: "recovered" },
  );
  // u = 0.3 → 0.15 lands in token 0.
  assert.deepEqual(
    verifySampled({
      draftTokens: tokenIds(1),
      draftProbs: [null],
      targetProbs,
      random: new ScriptedRandom([0.5, 0.3]),
    }),
    { tokens: [0], numAccepted: 0, kind: "recovered" },
  );
});

test("sampled: a rejection in the middle keeps the prefix and stops drawing", () => {
  const targetProbs = [probs(0.5, 0.5, 0), probs(0.1, 0.3, 0.6), probs(0, 1, 0), probs(0, 0, 1)];
  const draftProbs = [probs(0.5, 0.5, 0), probs(0.1, 0.1, 0.8), probs(1, 0, 0)];
  // Draft 0 (p = q) is always accepted. Draft 2 at position 1: p/q = 0.75, u = 0.8 rejects. Residual [0, 0.2, 0]
  // leaves only token 1, whatever u.
  const random = new ScriptedRandom([0.99, 0.8, 0.999]);
  const result = verifySampled({ draftTokens: tokenIds(0, 2, 0), draftProbs, targetProbs, random });
  assert.deepEqual(result, { tokens: [0, 1], numAccepted: 1, kind: "recovered" });
  assert.equal(random.numDrawn, 3);
});

test("sampled: a draft the target rules out is always rejected, and so is one its proposer ruled out", () => {
  const p = probs(0, 0.5, 0.5);
  assert.deepEqual(
    verifySampled({
      draftTokens: tokenIds(0),
      draftProbs: [probs(1, 0, 0)],
      targetProbs: [p, p],
      random: new ScriptedRandom([0, 0.1]),
    }),
    { tokens: [1], numAccepted: 0, kind: "recovered" },
  );
  assert.deepEqual(
    verifySampled({
      draftTokens: tokenIds(0),
      draftProbs: [null],
      targetProbs: [p, p],
      random: new ScriptedRandom([0, 0.9]),
    }),
    { tokens: [2], numAccepted: 0, kind: "recovered" },
  );
  // q(1) = 0 but the proposer claims token 1: rejected; the residual max(0, p − q) = [0, 0.5, 0] keeps token 1.
  assert.deepEqual(
    verifySampled({
      draftTokens: tokenIds(1),
      draftProbs: [probs(0, 0, 1)],
      targetProbs: [p, p],
      random: new ScriptedRandom([0, 0.1]),
    }),
    { tokens: [1], numAccepted: 0, kind: "recovered" },
  );
});

test("sampled: when p − q vanishes numerically the recovered token is drawn from p", () => {
  // q(1) exceeds p(1) by rounding only, so a u close to 1 rejects, and max(0, p − q) is all zero.
  const p = probs(0.5, 0.5);
  const q = probs(0.5, 0.5000001);
  assert.deepEqual(
    verifySampled({
      draftTokens: tokenIds(1),
      draftProbs: [q],
      targetProbs: [p, p],
      random: new ScriptedRandom([0.9999999, 0.2]),
    }),
    { tokens: [0], numAccepted: 0, kind: "recovered" },
  );
});

test("sampled: mismatched lengths are rejected", () => {
  const p = probs(0.5, 0.5);
  const random = new ScriptedRandom([]);
  assert.throws(
    () => verifySampled({ draftTokens: tokenIds(0), draftProbs: [null], targetProbs: [p], random }),
    RangeError,
  );
  assert.throws(
    () => verifySampled({ draftTokens: tokenIds(0), draftProbs: [], targetProbs: [p, p], random }),
    RangeError,
  );
  assert.throws(
    () => verifySampled({ draftTokens: tokenIds(0), draftProbs: [probs(1, 0, 0)], targetProbs: [p, p], random }),
    RangeError,
  );
  assert.throws(
    () => verifySampled({ draftTokens: tokenIds(2), draftProbs: [null], targetProbs: [p, p], random }),
    RangeError,
  );
});

const NUM_TRIALS = 200_000;

/** |observed − n·a| within 5 binomial standard deviations (exact when a is 0 or 1). */
function assertBinomial(observed: number, numTrials: number, probability: number, label: string): void {
  const expected = numTrials * probability;
  const tolerance = 5 * Math.sqrt(numTrials * probability * (1 - probability));
  assert.ok(
    Math.abs(observed - expected) <= tolerance,
    `${label}: ${observed} vs ${expected} ± ${tolerance.toFixed(1)}`,
  );
}

/**
 * Pearson's chi-square of `counts` against `expected` probabilities must stay below the 5-sigma quantile of its
 * distribution (Wilson–Hilferty approximation). Categories of probability 0 must never occur at all.
 */
function assertFollows(counts: readonly number[], expected: Float32Array, label: string): void {
  const numTrials = counts.reduce((sum, count) => sum + count, 0);
  let statistic = 0;
  let categories = 0;
  expected.forEach((probability, token) => {
    const count = counts[token] ?? 0;
    if (probability === 0) {
      assert.equal(count, 0, `${label}: token ${token} has probability 0 but occurred ${count} times`);
      return;
    }
    categories += 1;
    statistic += (count - numTrials * probability) ** 2 / (numTrials * probability);
  });
  const df = categories - 1;
  const critical = df * (1 - 2 / (9 * df) + 5 * Math.sqrt(2 / (9 * df))) ** 3;
  assert.ok(
    statistic < critical,
    `${label}: chi-square ${statistic.toFixed(2)} ≥ ${critical.toFixed(2)} (df ${df}); counts ${counts}`,
  );
}

function histogram(results: readonly VerifyResult[], position: number, vocabSize: number): number[] {
  const counts = new Array<number>(vocabSize).fill(0);
  for (const result of results) {
    const token = result.tokens[position];
    if (token !== undefined) counts[token] = (counts[token] as number) + 1;
  }
  return counts;
}

test("a draft is accepted with probability min(1, p(x) / q(x))", () => {
  const p = probs(0.1, 0.2, 0.3, 0.4);
  const q = probs(0.4, 0.3, 0.2, 0.1);
  const random = new SeededRandom(11);
  for (let draft = 0; draft < 4; draft += 1) {
    let numAccepted = 0;
    for (let trial = 0; trial < NUM_TRIALS; trial += 1) {
      numAccepted += verifySampled({
        draftTokens: tokenIds(draft),
        draftProbs: [q],
        targetProbs: [p, p],
        random,
      }).numAccepted;
    }
    assertBinomial(numAccepted, NUM_TRIALS, Math.min(1, (p[draft] as number) / (q[draft] as number)), `draft ${draft}`);
  }
});

// Non-trivial p and q: each rules out a token the other allows, and they differ everywhere else.
const P0 = probs(0.05, 0.25, 0.3, 0.2, 0.2, 0);
const Q0 = probs(0.3, 0.1, 0.3, 0, 0.1, 0.2);
const P1 = probs(0.4, 0, 0.1, 0.1, 0.1, 0.3);
const Q1 = probs(0.1, 0.2, 0.2, 0.2, 0.1, 0.2);
const P2 = probs(0, 0.1, 0.2, 0.3, 0.4, 0);

test("with drafts drawn from q, each emitted token follows the target's p exactly", () => {
  const random = new SeededRandom(12);
  const results: VerifyResult[] = [];
  for (let trial = 0; trial < NUM_TRIALS; trial += 1) {
    const draftTokens = [sampleFrom(Q0, random.next()), sampleFrom(Q1, random.next())];
    results.push(verifySampled({ draftTokens, draftProbs: [Q0, Q1], targetProbs: [P0, P1, P2], random }));
  }
  assertFollows(histogram(results, 0, 6), P0, "first token");
  // Given the first draft was accepted, the second emitted token is the next position's and follows p_1.
  assertFollows(
    histogram(
      results.filter((result) => result.numAccepted >= 1),
      1,
      6,
    ),
    P1,
    "second token",
  );
  assertFollows(
    histogram(
      results.filter((result) => result.numAccepted === 2),
      2,
      6,
    ),
    P2,
    "bonus token",
  );
  // Acceptance of draft 0 is Σ min(p, q) = 0.05 + 0.1 + 0.3 + 0 + 0.1 + 0 = 0.55.
  assertBinomial(results.filter((result) => result.numAccepted >= 1).length, NUM_TRIALS, 0.55, "first acceptance");
});

test("with a deterministic proposer, the first emitted token follows p exactly", () => {
  const random = new SeededRandom(13);
  for (const draft of [1, 4, 5]) {
    const results: VerifyResult[] = [];
    for (let trial = 0; trial < NUM_TRIALS; trial += 1) {
      results.push(
        verifySampled({ draftTokens: tokenIds(draft, 0), draftProbs: [null, null], targetProbs: [P0, P1, P2], random }),
      );
    }
    assertFollows(histogram(results, 0, 6), P0, `draft ${draft}`);
    assertBinomial(
      results.filter((result) => result.numAccepted >= 1).length,
      NUM_TRIALS,
      P0[draft] as number,
      `draft ${draft} acceptance`,
    );
  }
});

test("the bonus token follows the last target distribution", () => {
  const random = new SeededRandom(14);
  const alwaysAccepted: VerifyResult[] = [];
  const noDrafts: VerifyResult[] = [];
  for (let trial = 0; trial < NUM_TRIALS; trial += 1) {
    alwaysAccepted.push(
      verifySampled({
        draftTokens: tokenIds(2, 3),
        draftProbs: [null, null],
        targetProbs: [probs(0, 0, 1, 0, 0, 0), probs(0, 0, 0, 1, 0, 0), P2],
        random,
      }),
    );
    noDrafts.push(verifySampled({ draftTokens: tokenIds(), draftProbs: [], targetProbs: [P2], random }));
  }
  assert.ok(alwaysAccepted.every((result) => result.kind === "bonus" && result.numAccepted === 2));
  assertFollows(histogram(alwaysAccepted, 2, 6), P2, "bonus after two drafts");
  assertFollows(histogram(noDrafts, 0, 6), P2, "bonus without drafts");
});
