/**
 * Prefix caching on slabs, on the real model: each sequence attends over its own slab only, and a cached prefix is
 * copied into the slab (from a running sequence, or from its copy saved to host memory) instead of being computed
 * again; greedy outputs equal those of a server that caches nothing.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { SequenceId } from "../../src/engine/engine.ts";
import { LlamaEngine } from "../../src/engine/llama-engine.ts";
import { compareGreedy, greedyCompletion } from "../helpers/greedy-compare.ts";
import { holdStream, type ModelServer, startModelServer } from "../helpers/model-server.ts";
import { expectSharedPrefixReuse } from "../helpers/shared-prefix-reuse.ts";

let slabs: ModelServer;
let uncached: ModelServer;

before(async () => {
  // 2,048 tokens per slab, so a holder stream outlasts the turns beside it even on a slow machine.
  slabs = await startModelServer(["--kv-layout", "slabs", "--parallel", "4", "--ctx-size", "2048"]);
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

test("on slabs, requests sharing a long prefix copy it instead of computing it, with the same outputs", async () => {
  assert.equal(slabs.runtime.loop.isPrefixCaching, true);
  assert.equal(slabs.runtime.engine.info.isKvShared, false);
  await expectSharedPrefixReuse(slabs, uncached);
});

test("on slabs, a next turn restores its earlier turn into its slab, and a running request's prefix is copied", async () => {
  const system = "Lily and Ben lived in a small house near the big park with their mom and dad. ".repeat(2);
  const HOLDER_TOKENS = 1900;
  const isHolder = (stats: { readonly maxTokens: number }): boolean => stats.maxTokens === HOLDER_TOKENS;
  const holder = holdStream(slabs, `${system}One day`, HOLDER_TOKENS);
  // The first turn copies the system prompt from the running holder.
  const turn1 = await greedyCompletion(slabs, `${system}Lily said`, 16);
  const numSystemTokens = slabs.runtime.engine.tokenize(system, { addBos: true }).length;
  assert.ok(turn1.cached >= Math.floor(numSystemTokens / 16) * 16 - 16 && turn1.cached > 0, `cached ${turn1.cached}`);
  compareGreedy(turn1, await greedyCompletion(uncached, `${system}Lily said`, 16), "first turn");

  const prompt2 = `${system}Lily said${turn1.text} Ben said`;
  const turn2 = await greedyCompletion(slabs, prompt2, 16);
  const numTurn1Tokens = slabs.runtime.engine.tokenize(`${system}Lily said${turn1.text}`, { addBos: true }).length;
  assert.ok(
    turn2.cached >= Math.floor((numTurn1Tokens - 1) / 16) * 16 - 16 && turn2.cached > numSystemTokens,
    `cached ${turn2.cached}; the system prompt has ${numSystemTokens} tokens, turn 1 ${numTurn1Tokens}`,
  );
  compareGreedy(turn2, await greedyCompletion(uncached, prompt2, 16), "next turn");
  assert.ok(!slabs.finished.some(isHolder), "the holder was still running");
  holder.stop();
  await holder.done;
  await slabs.waitForFinished(isHolder);

  const engine = slabs.runtime.engine;
  assert.ok(engine instanceof LlamaEngine);
  for (let sequenceId = 0; sequenceId < engine.info.numSequences; sequenceId++)
    assert.equal(engine.positionsOf(sequenceId as SequenceId), null, `sequence ${sequenceId} holds no cells`);
  const state = slabs.runtime.loop.kvCacheState();
  assert.equal(state.numUsedBlocks, 0);
  assert.ok(state.numSavedPrefixes > 0, "finished requests' prefixes wait in host memory");
});
