/**
 * Prefix caching on slabs, on the real model: each sequence attends over its own slab only, and a cached prefix is
 * copied into the slab (from a running sequence, or from its copy saved to host memory) instead of being computed
 * again; greedy outputs equal those of a server that caches nothing.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { SequenceId } from "../../src/engine/engine.ts";
import { LlamaEngine } from "../../src/engine/llama-engine.ts";
import { compareGreedy, type GreedyRun } from "../helpers/greedy-compare.ts";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";

let slabs: ModelServer;
let uncached: ModelServer;

before(async () => {
  slabs = await startModelServer(["--kv-layout", "slabs", "--parallel", "4", "--ctx-size", "512"]);
  uncached = await startModelServer([
    "--kv-layout",
    "slabs",
    "--parallel",
    "4",
    "--ctx-size",
    "512",
    "--prefix-caching",
    "false",
  ]);
});

after(async () => {
  await slabs?.close();
  await uncached?.close();
});

async function greedy(server: ModelServer, prompt: string, maxTokens: number): Promise<GreedyRun & { cached: number }> {
  const completion = await server.client.completions.create({
    model: STORIES_ID,
    prompt,
    max_tokens: maxTokens,
    temperature: 0,
    ignore_eos: true,
    logprobs: 2,
  } as Parameters<typeof server.client.completions.create>[0] & { stream?: false });
  const choice = completion.choices[0];
  assert.equal(choice?.finish_reason, "length");
  return {
    text: choice?.text ?? "",
    tokens: choice?.logprobs?.tokens ?? [],
    topLogprobs: choice?.logprobs?.top_logprobs ?? [],
    cached: completion.usage?.prompt_tokens_details?.cached_tokens ?? -1,
  };
}

test("on slabs, requests sharing a long prefix copy it instead of computing it, with the same outputs", async () => {
  assert.equal(slabs.runtime.loop.isPrefixCaching, true);
  assert.equal(slabs.runtime.engine.info.isKvShared, false);
  const story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ".repeat(
    5,
  );
  const endings = ["One day, she saw", "Her friend Tom", "The sun was", "A big dog"];
  const numPrefixTokens = slabs.runtime.engine.tokenize(story, { addBos: true }).length;
  const expected = await Promise.all(endings.map((ending) => greedy(uncached, story + ending, 16)));

  const first = await greedy(slabs, story + endings[0], 16);
  const stepsBefore = slabs.steps.length;
  const rest = await Promise.all(endings.slice(1).map((ending) => greedy(slabs, story + ending, 16)));
  for (const [index, run] of [first, ...rest].entries()) compareGreedy(run, expected[index]!, endings[index]!);

  const reused = Math.floor((numPrefixTokens - 1) / 16) * 16;
  for (const result of rest)
    assert.ok(result.cached >= reused - 16 && result.cached > 0, `cached ${result.cached} of ${numPrefixTokens}`);
  const prefilled = slabs.steps.slice(stepsBefore).reduce((sum, step) => sum + step.numPromptTokens, 0);
  const promptTokens = endings
    .slice(1)
    .reduce((sum, ending) => sum + slabs.runtime.engine.tokenize(story + ending, { addBos: true }).length, 0);
  const cachedTokens = rest.reduce((sum, result) => sum + result.cached, 0);
  assert.equal(prefilled, promptTokens - cachedTokens, "exactly the uncached prompt tokens were evaluated");
});

test("on slabs, a next turn restores its earlier turn into its slab, and a running request's prefix is copied", async () => {
  const system = "Lily and Ben lived in a small house near the big park with their mom and dad. ".repeat(2);
  const holder = new AbortController();
  const isHolder = (stats: { readonly maxTokens: number }): boolean => stats.maxTokens === 400;
  const held = fetch(`${slabs.baseUrl}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      prompt: `${system}One day`,
      max_tokens: 400,
      temperature: 0,
      ignore_eos: true,
      stream: true,
    }),
    signal: holder.signal,
  })
    .then((response) => response.text())
    .catch(() => undefined);
  // The first turn copies the system prompt from the running holder.
  const turn1 = await greedy(slabs, `${system}Lily said`, 16);
  const numSystemTokens = slabs.runtime.engine.tokenize(system, { addBos: true }).length;
  assert.ok(turn1.cached >= Math.floor(numSystemTokens / 16) * 16 - 16 && turn1.cached > 0, `cached ${turn1.cached}`);
  compareGreedy(turn1, await greedy(uncached, `${system}Lily said`, 16), "first turn");

  const prompt2 = `${system}Lily said${turn1.text} Ben said`;
  const turn2 = await greedy(slabs, prompt2, 16);
  const numTurn1Tokens = slabs.runtime.engine.tokenize(`${system}Lily said${turn1.text}`, { addBos: true }).length;
  assert.ok(
    turn2.cached >= Math.floor((numTurn1Tokens - 1) / 16) * 16 - 16 && turn2.cached > numSystemTokens,
    `cached ${turn2.cached}; the system prompt has ${numSystemTokens} tokens, turn 1 ${numTurn1Tokens}`,
  );
  compareGreedy(turn2, await greedy(uncached, prompt2, 16), "next turn");
  assert.ok(!slabs.finished.some(isHolder), "the holder was still running");
  holder.abort();
  await held;
  await slabs.waitForFinished(isHolder);

  const engine = slabs.runtime.engine;
  assert.ok(engine instanceof LlamaEngine);
  for (let sequenceId = 0; sequenceId < engine.info.numSequences; sequenceId++)
    assert.equal(engine.positionsOf(sequenceId as SequenceId), null, `sequence ${sequenceId} holds no cells`);
  const state = slabs.runtime.loop.kvCacheState();
  assert.equal(state.numUsedBlocks, 0);
  assert.ok(state.numSavedPrefixes > 0, "finished requests' prefixes wait in host memory");
});
