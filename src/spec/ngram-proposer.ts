/**
 * Prompt-lookup decoding: propose as drafts the tokens that followed the most recent earlier occurrence of the
 * sequence's last n tokens. It costs no model and pays off where output copies its context (code edits,
 * extraction, quoting); its drafts are deterministic, so the verifier treats q as one-hot.
 */
import type { TokenId } from "../engine/engine.ts";

export interface NgramOptions {
  /** Shortest suffix worth matching, ≥ 1. */
  readonly minNgram: number;
  /** Longest suffix tried first, ≥ minNgram. */
  readonly maxNgram: number;
  /** Most draft tokens to return, ≥ 0. */
  readonly numDraft: number;
}

/**
 * For n from maxNgram down to minNgram, finds the most recent earlier occurrence of the last n `tokens` and returns
 * up to numDraft tokens that followed it; an empty array when no n matches. Occurrences may overlap the suffix
 * itself (a run like `a a a` predicts more `a`).
 *
 * One backward scan answers every n at once: each earlier position j where `tokens[j]` equals the last token is
 * extended backwards to its match length (capped at maxNgram). The longest n with any match is the largest length
 * seen, and the first j reaching it in a backward scan is its most recent occurrence. The scan stops at the first
 * full-length match. Cost: O(L × maxNgram) comparisons for L tokens in the worst case (long runs of one token),
 * about L in practice since most positions differ at once; 32k tokens take well under a millisecond.
 */
export function proposeNgram(tokens: readonly TokenId[], options: NgramOptions): TokenId[] {
  const { minNgram, maxNgram, numDraft } = options;
  if (!Number.isInteger(minNgram) || minNgram < 1)
    throw new RangeError(`minNgram must be an integer ≥ 1; got ${minNgram}`);
  if (!Number.isInteger(maxNgram) || maxNgram < minNgram) {
    throw new RangeError(`maxNgram must be an integer ≥ minNgram (${minNgram}); got ${maxNgram}`);
  }
  if (!Number.isInteger(numDraft) || numDraft < 0)
    throw new RangeError(`numDraft must be an integer ≥ 0; got ${numDraft}`);

  const length = tokens.length;
  if (numDraft === 0 || length <= minNgram) return [];
  const last = length - 1;
  // The last n tokens need an earlier occurrence ending at j ≤ last − 1, so n ≤ last.
  const longest = Math.min(maxNgram, last);

  let bestLength = 0;
  let bestEnd = -1;
  for (let end = last - 1; end >= minNgram - 1; end -= 1) {
    if (tokens[end] !== tokens[last]) continue;
    const reach = Math.min(longest, end + 1);
    let matched = 1;
    while (matched < reach && tokens[end - matched] === tokens[last - matched]) matched += 1;
    if (matched > bestLength) {
      bestLength = matched;
      bestEnd = end;
      if (matched === longest) break;
    }
  }
  if (bestLength < minNgram) return [];
  return tokens.slice(bestEnd + 1, Math.min(bestEnd + 1 + numDraft, length));
}
