/**
 * The model tests' shared-prefix check, for every KV layout: four prompts share a long story and differ in their
 * last words; after the first, the others take the story's full blocks from the cache and evaluate only the rest,
 * with greedy outputs as a server that caches nothing gives them.
 */
import assert from "node:assert/strict";
import { compareGreedy, greedyCompletion } from "./greedy-compare.ts";
import type { ModelServer } from "./model-server.ts";

const STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ".repeat(5);
const ENDINGS = ["One day, she saw", "Her friend Tom", "The sun was", "A big dog"];

export async function expectSharedPrefixReuse(server: ModelServer, uncached: ModelServer): Promise<void> {
  const numPrefixTokens = server.runtime.engine.tokenize(STORY, { addBos: true }).length;
  const expected = await Promise.all(ENDINGS.map((ending) => greedyCompletion(uncached, STORY + ending, 12)));

  const first = await greedyCompletion(server, STORY + ENDINGS[0], 12);
  const stepsBefore = server.steps.length;
  const rest = await Promise.all(ENDINGS.slice(1).map((ending) => greedyCompletion(server, STORY + ending, 12)));
  for (const [index, run] of [first, ...rest].entries()) compareGreedy(run, expected[index]!, ENDINGS[index]!);

  // The story's full blocks come from the cache; only the tail of each prompt is prefilled again.
  const reused = Math.floor((numPrefixTokens - 1) / 16) * 16;
  for (const result of rest)
    assert.ok(
      result.cached >= reused - 16 && result.cached > 0,
      `cached ${result.cached} of the ${numPrefixTokens}-token story`,
    );
  const prefilled = server.steps.slice(stepsBefore).reduce((sum, step) => sum + step.numPromptTokens, 0);
  const promptTokens = ENDINGS.slice(1).reduce(
    (sum, ending) => sum + server.runtime.engine.tokenize(STORY + ending, { addBos: true }).length,
    0,
  );
  const cachedTokens = rest.reduce((sum, result) => sum + result.cached, 0);
  assert.equal(prefilled, promptTokens - cachedTokens, "exactly the uncached prompt tokens were evaluated");
  assert.ok(prefilled < promptTokens / 3, `${prefilled} of ${promptTokens} prompt tokens evaluated`);
}
