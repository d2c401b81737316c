/**
 * Greedy outputs compared as exactly as llama.cpp allows. In its shared KV pool a sequence's tokens sit in whatever
 * cells were free, and attention accumulates over cells in pool order, so the same sequence placed differently
 * (alone, among others, recomputed after preemption) can round differently in the last bits. That may flip an
 * argmax where two tokens are within rounding of each other, and nowhere else. So two greedy runs must be identical
 * token for token, or first differ at a position where the reference run had the other token as a near-tie.
 */
import assert from "node:assert/strict";
import { type ModelServer, STORIES_ID } from "./model-server.ts";

export interface GreedyRun {
  readonly text: string;
  readonly tokens: readonly string[];
  /** Per position, the top tokens' logprobs (the completions API's `logprobs: 2`). */
  readonly topLogprobs: readonly Record<string, number>[];
}

/** What `greedyCompletion` also reads of the response: the cached prompt tokens and the completion's tokens. */
export interface GreedyCompletion extends GreedyRun {
  readonly cached: number;
  readonly numCompletionTokens: number;
}

/** A greedy completion of stories260K on `server` with `logprobs: 2`, which must run to `maxTokens` (ignore_eos). */
export async function greedyCompletion(
  server: ModelServer,
  prompt: string,
  maxTokens: number,
): Promise<GreedyCompletion> {
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
    numCompletionTokens: completion.usage?.completion_tokens ?? -1,
  };
}

/** Largest logprob gap between the reference's token and the other token that still counts as a near-tie. */
export const NEAR_TIE_NATS = 0.02;

/** "identical", or "near-tie" when the runs part at a near-tie; throws on any other difference. */
export function compareGreedy(actual: GreedyRun, reference: GreedyRun, label: string): "identical" | "near-tie" {
  if (actual.text === reference.text) return "identical";
  const index = reference.tokens.findIndex((token, position) => actual.tokens[position] !== token);
  assert.ok(index >= 0, `${label}: texts differ but tokens agree`);
  const top = reference.topLogprobs[index] ?? {};
  const expected = reference.tokens[index] ?? "";
  const chosen = actual.tokens[index] ?? "";
  const gap = (top[expected] ?? -Infinity) - (top[chosen] ?? -Infinity);
  assert.ok(
    gap <= NEAR_TIE_NATS,
    `${label}: diverged at token ${index} (${JSON.stringify(chosen)} instead of ${JSON.stringify(expected)}), a gap of ${gap.toFixed(4)} nats, not a near-tie`,
  );
  return "near-tie";
}

/**
 * `compareGreedy` for a run known only by its text: where the texts part, the reference's token there must have a
 * near-tie alternative that the actual text continues with.
 */
export function compareGreedyText(actualText: string, reference: GreedyRun, label: string): "identical" | "near-tie" {
  if (actualText === reference.text) return "identical";
  let offset = 0;
  for (const [index, token] of reference.tokens.entries()) {
    if (actualText.startsWith(token, offset) && reference.text.startsWith(token, offset)) {
      offset += token.length;
      continue;
    }
    const top = reference.topLogprobs[index] ?? {};
    const expected = top[token] ?? -Infinity;
    const taken = Object.entries(top).find(
      ([alternative]) => alternative !== token && alternative.length > 0 && actualText.startsWith(alternative, offset),
    );
    assert.ok(
      taken !== undefined,
      `${label}: diverged at token ${index} (${JSON.stringify(actualText.slice(offset, offset + 12))}…), not at a listed alternative`,
    );
    const gap = expected - taken[1];
    assert.ok(
      gap <= NEAR_TIE_NATS,
      `${label}: diverged at token ${index} to ${JSON.stringify(taken[0])}, a gap of ${gap.toFixed(4)} nats, not a near-tie`,
    );
    return "near-tie";
  }
  assert.fail(`${label}: texts differ after the reference's last token`);
}
