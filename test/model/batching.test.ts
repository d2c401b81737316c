/**
 * Continuous batching on the real model: many clients share one engine loop, each step is one batch for every
 * running sequence, and batching changes no greedy result beyond rounding at a near-tie.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { compareGreedy, type GreedyRun, greedyCompletion } from "../helpers/greedy-compare.ts";
import { type ModelServer, startModelServer } from "../helpers/model-server.ts";

let server: ModelServer;

before(async () => {
  server = await startModelServer(["--parallel", "16", "--ctx-size", "256", "--batch-size", "256"]);
});

after(async () => {
  await server.close();
});

const PROMPTS = [
  "Once upon a time",
  "The little dog",
  "Lily and Ben went to the park",
  "One day, a big bird",
  "Tom had a red ball",
  "The sun was hot and",
  "Mom said to Sue",
  "There was a tiny frog",
  "The cat liked to",
  "A boy named Max",
  "In the forest, there",
  "Sara wanted to play",
  "The old tree was",
  "Tim saw a shiny",
  "The girl was sad because",
  "It was a rainy day",
];
const MAX_TOKENS = 48;

function greedy(prompt: string): Promise<GreedyRun> {
  return greedyCompletion(server, prompt, MAX_TOKENS);
}

test("greedy output of every request is identical alone and among 15 others, and the 16 share each step", async () => {
  const alone: GreedyRun[] = [];
  for (const prompt of PROMPTS) alone.push(await greedy(prompt));
  assert.equal(new Set(alone.map((run) => run.text)).size, PROMPTS.length, "different prompts continue differently");

  const firstConcurrentStep = server.steps.length;
  const together = await Promise.all(PROMPTS.map((prompt) => greedy(prompt)));
  // Identical, or parted at a near-tie that the KV cells' placement can round either way (see greedy-compare.ts).
  const outcomes = together.map((run, index) => compareGreedy(run, alone[index]!, PROMPTS[index]!));
  assert.ok(
    outcomes.filter((outcome) => outcome === "identical").length >= PROMPTS.length - 2,
    `outcomes: ${outcomes.join(", ")}`,
  );

  const steps = server.steps.slice(firstConcurrentStep);
  const numGenerated = PROMPTS.length * MAX_TOKENS;
  const widest = Math.max(...steps.map((step) => step.numSequences));
  assert.equal(widest, PROMPTS.length, "some step carried all 16 sequences");
  // Sequential decoding would take one step per token (768); lockstep batching needs about MAX_TOKENS steps,
  // plus a few while requests arrive over HTTP at different moments.
  assert.ok(steps.length < numGenerated / 4, `${steps.length} steps for ${numGenerated} tokens`);
  const numPromptTokens = PROMPTS.reduce(
    (sum, prompt) => sum + server.runtime.engine.tokenize(prompt, { addBos: true }).length,
    0,
  );
  const evaluated = steps.reduce((sum, step) => sum + step.numTokens, 0);
  assert.equal(
    evaluated,
    numPromptTokens + PROMPTS.length * (MAX_TOKENS - 1),
    "every prompt token and every generated token but each request's last",
  );
  assert.equal(
    steps.reduce((sum, step) => sum + step.numPromptTokens, 0),
    numPromptTokens,
  );
  assert.equal(
    steps.reduce((sum, step) => sum + step.numGeneratedTokens, 0),
    numGenerated,
  );
});
