import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededRandom } from "../../../src/engine/seeded-random.ts";
import {
  AcceptanceTracker,
  chooseDraftLength,
  DEFAULT_ACCEPTANCE_PRIOR,
  expectedTokensPerStep,
} from "../../../src/spec/draft-length.ts";

const close = (actual: number, expected: number, message?: string): void =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${message ?? ""} ${actual} vs ${expected}`);

test("expected tokens per step are 1 + a + … + a^K, and K + 1 at a = 1", () => {
  close(expectedTokensPerStep(0, 5), 1);
  close(expectedTokensPerStep(0.5, 2), 1.75);
  close(expectedTokensPerStep(0.9, 0), 1);
  assert.equal(expectedTokensPerStep(1, 3), 4);
});

test("the draft length maximising tokens per millisecond is chosen", () => {
  // 10 ms + 1 ms per position, a = 0.5: K = 0..4 give 1/11, 1.5/12, 1.75/13, 1.875/14, 1.9375/15; K = 2 is best.
  assert.equal(chooseDraftLength({ acceptanceRate: 0.5, maxDraft: 4, targetStepMs: (n) => 10 + n, draftStepMs: 0 }), 2);
});

test("no speculation when acceptance is low", () => {
  // 10 ms + 2 ms per position, a = 0.1: K = 1 gives 1.1/14 < 1/12.
  assert.equal(
    chooseDraftLength({ acceptanceRate: 0.1, maxDraft: 8, targetStepMs: (n) => 10 + 2 * n, draftStepMs: 0 }),
    0,
  );
  assert.equal(
    chooseDraftLength({ acceptanceRate: 0, maxDraft: 8, targetStepMs: () => 10, draftStepMs: 0 }),
    0,
    "ties go to K = 0",
  );
});

test("no speculation when drafting is expensive", () => {
  const targetStepMs = (n: number): number => 10 + 2 * n;
  assert.ok(chooseDraftLength({ acceptanceRate: 0.7, maxDraft: 8, targetStepMs, draftStepMs: 0 }) > 0);
  assert.equal(chooseDraftLength({ acceptanceRate: 0.7, maxDraft: 8, targetStepMs, draftStepMs: 10 }), 0);
});

test("the chosen length grows with the acceptance rate, up to maxDraft", () => {
  const targetStepMs = (n: number): number => 10 + 0.5 * n;
  const lengths = [0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 1].map((acceptanceRate) =>
    chooseDraftLength({ acceptanceRate, maxDraft: 8, targetStepMs, draftStepMs: 0.3 }),
  );
  for (const [index, length] of lengths.slice(1).entries())
    assert.ok(length >= (lengths[index] as number), `${lengths}`);
  assert.ok((lengths[0] as number) < (lengths[4] as number), `${lengths}`);
  assert.equal(lengths[6], 8);
  assert.equal(chooseDraftLength({ acceptanceRate: 1, maxDraft: 0, targetStepMs, draftStepMs: 0 }), 0);
});

test("invalid inputs throw", () => {
  const targetStepMs = (n: number): number => n;
  assert.throws(
    () => chooseDraftLength({ acceptanceRate: 1.2, maxDraft: 4, targetStepMs, draftStepMs: 0 }),
    RangeError,
  );
  assert.throws(
    () => chooseDraftLength({ acceptanceRate: 0.5, maxDraft: -1, targetStepMs, draftStepMs: 0 }),
    RangeError,
  );
  assert.throws(
    () => chooseDraftLength({ acceptanceRate: 0.5, maxDraft: 4, targetStepMs: () => 0, draftStepMs: 0 }),
    RangeError,
  );
  assert.throws(() => new AcceptanceTracker({ smoothing: 0 }), RangeError);
  assert.throws(() => new AcceptanceTracker().observe(2, 3), RangeError);
});

test("the tracker starts at its prior and weighs each judged draft, ignoring drafts after a rejection", () => {
  const tracker = new AcceptanceTracker();
  assert.equal(tracker.acceptanceRate, DEFAULT_ACCEPTANCE_PRIOR);
  tracker.observe(0, 0);
  assert.equal(tracker.acceptanceRate, 0.5);
  // One success (0.5 → 0.55), then one failure (0.55 → 0.495); the third draft was never judged.
  tracker.observe(3, 1);
  close(tracker.acceptanceRate, 0.495);
  tracker.observe(2, 2);
  close(tracker.acceptanceRate, 1 - 0.505 * 0.81);
  const custom = new AcceptanceTracker({ prior: 0.9, smoothing: 0.5 });
  custom.observe(1, 0);
  close(custom.acceptanceRate, 0.45);
});

test("the tracker converges to the true per-draft acceptance rate", () => {
  const random = new SeededRandom(21);
  for (const trueRate of [0.2, 0.6, 0.9]) {
    const tracker = new AcceptanceTracker({ smoothing: 0.01 });
    let sumOfEstimates = 0;
    const numSteps = 6000;
    for (let step = 0; step < numSteps; step += 1) {
      const numDrafted = 4;
      let numAccepted = 0;
      while (numAccepted < numDrafted && random.next() < trueRate) numAccepted += 1;
      tracker.observe(numDrafted, numAccepted);
      if (step >= numSteps / 2) sumOfEstimates += tracker.acceptanceRate;
    }
    const meanEstimate = sumOfEstimates / (numSteps / 2);
    assert.ok(Math.abs(meanEstimate - trueRate) < 0.02, `true ${trueRate}: mean estimate ${meanEstimate}`);
    assert.ok(
      Math.abs(tracker.acceptanceRate - trueRate) < 0.1,
      `true ${trueRate}: final estimate ${tracker.acceptanceRate}`,
    );
  }
});
