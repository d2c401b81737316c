/**
 * Speculation with a draft model that differs from the target: stories260K as the target and its first 4 of 5
 * blocks as the draft (written by `deriveDraftModel`; their greedy tokens agree about 58% of the time), so drafts are
 * both accepted and rejected.
 *
 * - Greedy: output equals the target's without speculation, alone and among 8 concurrent requests.
 * - Sampled, temperature 1: the joint distribution of generated tokens 2 and 3 (token 1 comes from the prefill,
 *   before any draft; token 2 is an accepted draft or a residual sample, token 3 a bonus or a residual sample) over
 *   N seeded runs matches the target's own.
 *
 * The test: a chi-square test of homogeneity between N speculative and N plain samples. Outcomes seen fewer than
 * 10 times in both runs together are pooled into one category, so every category's expected count is at least 5
 * and the chi-square approximation holds. For two samples of equal size, X² = Σ (a − b)² / (a + b) follows χ² with
 * k − 1 degrees of freedom when both come from one distribution; the threshold is its 1 − 10⁻⁶ quantile
 * (Wilson–Hilferty, z = 4.753), so an exact sampler fails about once in a million runs. Two plain runs are compared
 * the same way as a control. Checked by hand with N = 4,000: an exact sampler gave X² 9.6 (threshold 41.9, control
 * 4.4); accepting drafts with 3× the right probability gave 242 and fails. Subtler errors (drawing a rejected
 * position from p instead of the residual max(0, p − q) gave 24) are left to the rejection sampler's unit tests,
 * which compare 200,000 draws per case with the exact distributions.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { greedySampling } from "../../src/engine/engine.ts";
import { type DraftPair, startDraftPair } from "../helpers/draft-pair.ts";
import { compareGreedyText, type GreedyRun } from "../helpers/greedy-compare.ts";
import { homogeneity } from "../helpers/homogeneity.ts";
import { type ModelServer, STORIES_ID, STORY_PROMPTS } from "../helpers/model-server.ts";
import { sampleOutcomes } from "../helpers/sample-outcomes.ts";

const N = 4000;

let plain: ModelServer;
let speculative: ModelServer;
let pair: DraftPair;

before(async () => {
  pair = await startDraftPair();
  ({ plain, speculative } = pair);
});

after(async () => {
  await pair?.close();
});

async function greedy(server: ModelServer, prompt: string, withLogprobs: boolean): Promise<GreedyRun> {
  const completion = await server.client.completions.create({
    model: STORIES_ID,
    prompt,
    max_tokens: 96,
    temperature: 0,
    ignore_eos: true,
    ...(withLogprobs ? { logprobs: 2 } : {}),
  } as Parameters<typeof server.client.completions.create>[0] & { stream?: false });
  const choice = completion.choices[0];
  return {
    text: choice?.text ?? "",
    tokens: choice?.logprobs?.tokens ?? [],
    topLogprobs: choice?.logprobs?.top_logprobs ?? [],
  };
}

test("greedy output with a differing draft model equals the target's, alone and with 8 concurrent requests", async () => {
  const prompts = STORY_PROMPTS;
  const references = await Promise.all(prompts.map((prompt) => greedy(plain, prompt, true)));
  const alone = await greedy(speculative, prompts[0]!, false);
  assert.equal(compareGreedyText(alone.text, references[0]!, "alone"), "identical");
  const together = await Promise.all(prompts.map((prompt) => greedy(speculative, prompt, false)));
  const outcomes = together.map((run, index) => compareGreedyText(run.text, references[index]!, prompts[index]!));
  assert.ok(outcomes.filter((outcome) => outcome === "identical").length >= prompts.length - 1, outcomes.join(", "));
  const stats = speculative.runtime.loop.specStats();
  assert.ok(
    stats !== null && stats.numAcceptedTokens > 0 && stats.numAcceptedTokens < stats.numDraftTokens,
    "drafts were both accepted and rejected",
  );
});

/** Generated tokens 2 and 3 of N seeded requests at temperature 1, submitted straight to the engine loop. */
function sampleSecondAndThird(server: ModelServer, firstSeed: number): Promise<Map<string, number>> {
  return sampleOutcomes(server, {
    prompt: "Once upon a time",
    firstSeed,
    numRequests: N,
    maxTokens: 3,
    ignoreEos: true,
    sampling: { ...greedySampling(), temperature: 1 },
    outcomeOf: (tokens, finishReason) => {
      if (finishReason !== "length" || tokens.length !== 3)
        throw new Error(`finished ${finishReason} after ${tokens.length} tokens`);
      return `${tokens[1]},${tokens[2]}`;
    },
  });
}

test("at temperature 1, tokens 2 and 3 under speculation follow the target's own distribution", async () => {
  const before = speculative.runtime.loop.specStats();
  const plain1 = await sampleSecondAndThird(plain, 1);
  const plain2 = await sampleSecondAndThird(plain, 1 + N);
  const spec = await sampleSecondAndThird(speculative, 1 + 2 * N);
  const after = speculative.runtime.loop.specStats();
  assert.ok(before !== null && after !== null);
  const drafted = after.numDraftTokens - before.numDraftTokens;
  const accepted = after.numAcceptedTokens - before.numAcceptedTokens;
  assert.ok(
    accepted > N * 0.1 && accepted < drafted,
    `${accepted} of ${drafted} sampled drafts accepted: both outcomes occur`,
  );
  const control = homogeneity(plain2, plain1);
  assert.ok(
    control.statistic <= control.threshold,
    `control: X² ${control.statistic.toFixed(1)} > ${control.threshold.toFixed(1)}`,
  );
  const measured = homogeneity(spec, plain1);
  assert.ok(
    measured.statistic <= measured.threshold,
    `speculative vs plain: X² ${measured.statistic.toFixed(1)} > ${measured.threshold.toFixed(1)} (control ${control.statistic.toFixed(1)})`,
  );
});
