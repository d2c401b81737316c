/**
 * Verifies a request's draft tokens against the target model: keeps the longest acceptable prefix and adds one
 * token of the target's own, so greedy output equals the target's argmax chain and sampled output follows exactly
 * the target's distribution (speculative sampling: Leviathan et al. 2023, Chen et al. 2023).
 *
 * Glossary
 * - draft token x_i: the i-th of K tokens a proposer (prompt lookup, draft model) guessed ahead of the target.
 * - draft distribution q_i: what the proposer drew x_i from; a deterministic proposer has q_i = one-hot at x_i.
 * - target distribution p_i: what the non-speculative sampler would draw from at position i, given the drafts before
 *   it (`toDistribution` of the target's logits there); there are K + 1 of them, p_K following the last draft.
 * - accepted token: a draft token the verifier keeps. Accepted tokens are always a prefix of the drafts.
 * - recovered token: drawn from the residual normalize(max(0, p_i − q_i)) at the first rejected position i; it
 *   replaces the rejected draft and ends the step.
 * - bonus token: drawn from p_K when all K drafts are accepted.
 * So a step yields numAccepted + 1 tokens: the accepted drafts, then one recovered or bonus token.
 *
 * Why the sampled output is exact: at one position, x is output either as an accepted draft, with probability
 * q(x) · min(1, p(x)/q(x)) = min(p(x), q(x)), or as a recovered token, with probability (rejection mass) ×
 * residual(x) = Σ_y max(0, p(y) − q(y)) · max(0, p(x) − q(x)) / Σ_y max(0, p(y) − q(y)). The sum is
 * min(p, q)(x) + max(0, p − q)(x) = p(x). By induction every emitted position follows its p_i.
 */
import type { TokenId } from "../engine/engine.ts";
import type { UniformSource } from "../engine/seeded-random.ts";
import { sampleFrom } from "./target-distribution.ts";

export type FinalTokenKind = "recovered" | "bonus";

export interface VerifyResult {
  /** The accepted drafts, then the recovered or bonus token: numAccepted + 1 tokens. */
  readonly tokens: TokenId[];
  readonly numAccepted: number;
  /** How the last of `tokens` came about. */
  readonly kind: FinalTokenKind;
}

export interface SampledVerifyInput {
  /** The K draft tokens, K ≥ 0. */
  readonly draftTokens: readonly TokenId[];
  /** q_i per draft, or null when the proposer is deterministic (q_i is then one-hot at the draft token). */
  readonly draftProbs: readonly (Float32Array | null)[];
  /** p_0 … p_K: K + 1 target distributions over the vocabulary. */
  readonly targetProbs: readonly Float32Array[];
  /**
   * Draws one uniform per examined draft, then one for the final token; the count depends on the outcome, so a
   * seeded source reproduces a request only given the same drafts and distributions.
   */
  readonly random: UniformSource;
}

/**
 * Greedy verification: accept drafts while each equals the target's argmax at its position; the first mismatch is
 * replaced by the argmax there (recovered), and a fully accepted draft gains the last argmax (bonus).
 * `targetArgmaxes` holds K + 1 entries.
 */
export function verifyGreedy(draftTokens: readonly TokenId[], targetArgmaxes: readonly TokenId[]): VerifyResult {
  checkTargetCount(draftTokens.length, targetArgmaxes.length);
  const tokens: TokenId[] = [];
  for (let i = 0; i < draftTokens.length; i += 1) {
    const target = targetArgmaxes[i]!;
    if (draftTokens[i] !== target) {
      tokens.push(target);
      return { tokens, numAccepted: i, kind: "recovered" };
    }
    tokens.push(target);
  }
  tokens.push(targetArgmaxes[draftTokens.length]!);
  return { tokens, numAccepted: draftTokens.length, kind: "bonus" };
}

/**
 * Sampled verification: accept x_i with probability min(1, p_i(x_i) / q_i(x_i)), i.e. when u · q_i(x_i) < p_i(x_i)
 * for a uniform u in [0, 1). That never accepts a token the target gives probability 0, and rejects a draft its own
 * proposer gave probability 0 (an inconsistent q; it cannot happen when x_i was really drawn from q_i).
 */
export function verifySampled(input: SampledVerifyInput): VerifyResult {
  const { draftTokens, draftProbs, targetProbs, random } = input;
  const numDrafts = draftTokens.length;
  checkTargetCount(numDrafts, targetProbs.length);
  if (draftProbs.length !== numDrafts) {
    throw new RangeError(
      `expected one draft distribution (or null) per draft token: ${numDrafts}; got ${draftProbs.length}`,
    );
  }

  const tokens: TokenId[] = [];
  for (let i = 0; i < numDrafts; i += 1) {
    const draft = draftTokens[i]!;
    const p = targetProbs[i] as Float32Array;
    const q = draftProbs[i] ?? null;
    checkToken(draft, p.length);
    if (q !== null && q.length !== p.length) {
      throw new RangeError(`draft distribution ${i} covers ${q.length} tokens; the target's covers ${p.length}`);
    }
    const targetProb = p[draft] as number;
    const draftProb = q === null ? 1 : (q[draft] as number);
    const u = random.next();
    if (draftProb > 0 && u * draftProb < targetProb) {
      tokens.push(draft);
      continue;
    }
    tokens.push(sampleFrom(residual(p, q, draft), random.next()));
    return { tokens, numAccepted: i, kind: "recovered" };
  }
  tokens.push(sampleFrom(targetProbs[numDrafts] as Float32Array, random.next()));
  return { tokens, numAccepted: numDrafts, kind: "bonus" };
}

/**
 * max(0, p − q), unnormalised (`sampleFrom` normalises). When it vanishes numerically, p and q agree to rounding,
 * a rejection was a rounding artefact, and p itself is the distribution to draw from.
 */
function residual(p: Float32Array, q: Float32Array | null, draft: TokenId): Float32Array {
  const weights = new Float32Array(p.length);
  let total = 0;
  if (q === null) {
    weights.set(p);
    // p − one-hot: only the draft's entry changes, to max(0, p(x) − 1) = 0.
    weights[draft] = 0;
    for (let i = 0; i < weights.length; i += 1) total += weights[i] as number;
  } else {
    for (let i = 0; i < p.length; i += 1) {
      const difference = (p[i] as number) - (q[i] as number);
      if (difference > 0) {
        weights[i] = difference;
        total += weights[i] as number;
      }
    }
  }
  return total > 0 ? weights : p;
}

function checkTargetCount(numDrafts: number, numTargets: number): void {
  if (numTargets !== numDrafts + 1) {
    throw new RangeError(`expected ${numDrafts + 1} target positions for ${numDrafts} drafts; got ${numTargets}`);
  }
}

function checkToken(token: TokenId, vocabSize: number): void {
  if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
    throw new RangeError(`draft token ${token} is outside the vocabulary of ${vocabSize}`);
  }
}

/**
 * Verification for a deterministic proposer (q = one-hot at each draft, as prompt lookup is): sample the target's
 * token at each position from p_i with that position's own uniform, and accept the draft while it equals the
 * sample. This is the rule above for one-hot q — P(accept x) = p(x), and a rejection yields p without x,
 * renormalised — written so that each output position consumes one fixed uniform whatever K was. Output then
 * depends on the seed and the position only, not on how many drafts a step happened to carry: sampled requests
 * stay reproducible while the draft length adapts to timing.
 */
export function verifyBySampling(
  draftTokens: readonly TokenId[],
  targetProbs: (index: number) => Float32Array,
  uniformAt: (index: number) => number,
): VerifyResult {
  const tokens: TokenId[] = [];
  for (let index = 0; index <= draftTokens.length; index++) {
    const token = sampleFrom(targetProbs(index), uniformAt(index));
    tokens.push(token);
    if (index === draftTokens.length) return { tokens, numAccepted: index, kind: "bonus" };
    if (token !== draftTokens[index]) return { tokens, numAccepted: index, kind: "recovered" };
  }
  throw new Error("unreachable");
}
