/**
 * The shared KV pool on the real model: a pool far smaller than the running requests' needs serves them all by
 * preempting and resuming, with greedy outputs identical to running each alone; a shared prompt prefix is
 * prefilled once and forked; llama.cpp never runs out of cells; finished requests' cached prefixes leave the pool
 * for host memory and come back on a hit, after the part running requests hold when they do.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { SequenceId } from "../../src/engine/engine.ts";
import { LlamaEngine } from "../../src/engine/llama-engine.ts";
import { compareGreedy, type GreedyRun, greedyCompletion } from "../helpers/greedy-compare.ts";
import { holdStream, type ModelServer, STORY_PROMPTS, startModelServer } from "../helpers/model-server.ts";
import { expectSharedPrefixReuse } from "../helpers/shared-prefix-reuse.ts";

let small: ModelServer;
let unshared: ModelServer;

before(async () => {
  // 16 blocks of 16 tokens for 8 requests that each grow to about 7 blocks.
  small = await startModelServer([
    "--parallel",
    "8",
    "--ctx-size",
    "256",
    "--kv-cache-tokens",
    "256",
    "--kv-block-size",
    "16",
  ]);
  unshared = await startModelServer(["--parallel", "4", "--ctx-size", "512", "--prefix-caching", "false"]);
});

after(async () => {
  await small?.close();
  await unshared?.close();
});

const PROMPTS = STORY_PROMPTS;

test("8 requests needing 3.5x the pool all finish, preempted and resumed, each identical to its run alone", async () => {
  const alone: GreedyRun[] = [];
  for (const prompt of PROMPTS) alone.push(await greedyCompletion(unshared, prompt, 100));
  const preemptionsBefore = small.runtime.loop.kvCacheState().numPreemptions;
  const together = await Promise.all(PROMPTS.map((prompt) => greedyCompletion(small, prompt, 100)));
  const outcomes = together.map((run, index) => compareGreedy(run, alone[index]!, PROMPTS[index]!));
  assert.ok(
    outcomes.filter((outcome) => outcome === "identical").length >= PROMPTS.length - 2,
    `outcomes: ${outcomes.join(", ")}`,
  );
  const state = small.runtime.loop.kvCacheState();
  assert.ok(state.numPreemptions > preemptionsBefore, `preempted ${state.numPreemptions - preemptionsBefore} times`);
  assert.equal(state.numUsedBlocks, 0, "every block went back to the pool");
  assert.equal(small.runtime.loop.numRunning, 0);
});

test("requests sharing a long prefix prefill it once and continue exactly as without sharing", async () => {
  await expectSharedPrefixReuse(small, unshared);
});

test("cached prefixes of finished requests wait outside the pool, and a later hit restores them with the same output", async () => {
  const stories = ["Lily", "Ben", "Sue", "Tom", "Max", "Ann"].map((name) =>
    `${name} went to the park. ${name} saw a big red ball and a little dog. `.repeat(3),
  );
  const cold = await greedyCompletion(unshared, `${stories[5]!}Then`, 16);
  for (const story of stories) await greedyCompletion(small, `${story}Then`, 16);
  const engine = small.runtime.engine;
  assert.ok(engine instanceof LlamaEngine);
  const state = small.runtime.loop.kvCacheState();
  // llama.cpp attends over every cell up to the highest occupied one; with nothing running, nothing occupies any.
  for (let sequenceId = 0; sequenceId < engine.info.numSequences; sequenceId++) {
    assert.equal(engine.positionsOf(sequenceId as SequenceId), null, `sequence ${sequenceId} holds no cells`);
  }
  assert.ok(
    state.numSavedPrefixes > 0 && state.savedPrefixBytes > 0,
    `${state.numSavedPrefixes} prefixes saved, ${state.savedPrefixBytes} bytes`,
  );
  const hit = await greedyCompletion(small, `${stories[5]!}Then`, 16);
  assert.ok(hit.cached >= 16, `cached ${hit.cached} tokens`);
  compareGreedy(hit, cold, "restored prefix");
});

test("a next turn forks the prefix a running request holds and restores only its own earlier turn, with the same output", async () => {
  const chat = await startModelServer(["--parallel", "4", "--ctx-size", "2048", "--kv-block-size", "16"]);
  try {
    const system = "Lily and Ben lived in a small house near the big park with their mom and dad. ".repeat(2);
    const numSystemTokens = chat.runtime.engine.tokenize(system, { addBos: true }).length;
    // A long stream over the same system prompt keeps its blocks held by a running sequence throughout.
    const HOLDER_TOKENS = 1900;
    const isHolder = (stats: { readonly maxTokens: number }): boolean => stats.maxTokens === HOLDER_TOKENS;
    const holder = holdStream(chat, `${system}One day`, HOLDER_TOKENS);
    const turn1 = await greedyCompletion(chat, `${system}Lily said`, 16);
    const prompt2 = `${system}Lily said${turn1.text} Ben said`;
    const expected = await greedyCompletion(unshared, prompt2, 16);
    const turn2 = await greedyCompletion(chat, prompt2, 16);
    assert.ok(!chat.finished.some(isHolder), "the holder was still running");
    holder.stop();
    await holder.done;
    // Turn 1's blocks past the system prompt's came from its saved copy, the system prompt's from the holder.
    const numTurn1Tokens = chat.runtime.engine.tokenize(`${system}Lily said${turn1.text}`, { addBos: true }).length;
    assert.ok(
      turn2.cached >= Math.floor((numTurn1Tokens - 1) / 16) * 16 - 16 && turn2.cached > numSystemTokens,
      `cached ${turn2.cached} tokens; the system prompt has ${numSystemTokens}, turn 1 ${numTurn1Tokens}`,
    );
    compareGreedy(turn2, expected, "next turn");
    // The server learns of the disconnect from the socket; the blocks go when the request finishes.
    await chat.waitForFinished(isHolder);
    assert.equal(chat.runtime.loop.kvCacheState().numUsedBlocks, 0, "every block went back once the holder left");
  } finally {
    await chat.close();
  }
});
