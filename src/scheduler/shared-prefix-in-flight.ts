/**
 * Requests that arrive together with one long prefix (a system prompt, a few-shot preamble, a RAG context sent to
 * several users) would each compute it, because a block is cached only once a request has computed it. On the
 * shared pool every copy costs twice: the duplicate prefill, and more occupied cells, which every later token of
 * every sequence attends over. So a waiting request whose prompt shares full blocks with the part of a running
 * prompt still to be computed waits for them and then forks their cells. SGLang's scheduler makes the same call
 * ("in-batch prefix caching"); vLLM's v1 scheduler computes the copies.
 */
import type { Request } from "./request.ts";

/**
 * Fewer shared blocks than this (32 tokens with the default 16-token blocks) are computed again rather than waited
 * for: a step of delay would buy little.
 */
export const MIN_SHARED_BLOCKS_TO_WAIT = 2;

/**
 * Whether `waiting` shares at least `MIN_SHARED_BLOCKS_TO_WAIT` full blocks with a running request's
 * prompt that the running request has not computed yet. Prefilling requests progress every step, so the wait ends.
 */
export function waitsForSharedPrefix(waiting: Request, running: readonly Request[], blockSize: number): boolean {
  for (const request of running) {
    if (request.numComputedTokens >= request.promptTokens.length) continue;
    const firstPending = Math.floor(request.numComputedTokens / blockSize);
    // A prompt's last token is always computed, never cached: it gives the logits to sample from.
    const maxShared = Math.min(waiting.numTokens - 1, request.promptTokens.length);
    const lastNeeded = (firstPending + MIN_SHARED_BLOCKS_TO_WAIT) * blockSize;
    if (lastNeeded > maxShared) continue;
    // The blocks in flight differ first when the prompts differ at all, so they are compared first.
    if (!isSameBetween(waiting.allTokens, request.promptTokens, firstPending * blockSize, lastNeeded)) continue;
    if (isSameBetween(waiting.allTokens, request.promptTokens, 0, firstPending * blockSize)) return true;
  }
  return false;
}

function isSameBetween(a: readonly number[], b: readonly number[], start: number, end: number): boolean {
  for (let position = start; position < end; position++) if (a[position] !== b[position]) return false;
  return true;
}
