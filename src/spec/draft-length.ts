/**
 * Adaptive draft length: how many tokens to draft for a request next step, from its recent acceptance rate and
 * what a step costs. Drafting more pays only while the extra verified positions are likely to be accepted; a
 * request whose drafts keep failing falls back to K = 0 (plain decoding) until its rate recovers.
 */

/** Prior per-draft-token acceptance rate, before a request has verified anything. */
export const DEFAULT_ACCEPTANCE_PRIOR = 0.5;
/** Weight of each new draft outcome; the rate remembers roughly the last 1 / smoothing (here 10) outcomes. */
export const DEFAULT_ACCEPTANCE_SMOOTHING = 0.1;

export interface AcceptanceTrackerOptions {
  /** Starting rate in [0, 1]. Defaults to `DEFAULT_ACCEPTANCE_PRIOR`. */
  readonly prior?: number;
  /** In (0, 1]. Defaults to `DEFAULT_ACCEPTANCE_SMOOTHING`. */
  readonly smoothing?: number;
}

/**
 * One request's per-draft-token acceptance rate: an exponentially weighted mean over draft outcomes, starting at
 * the prior.
 *
 * A step observes its drafts in order until the first rejection, so it reports numAccepted successes and, when
 * numAccepted < numDrafted, one failure; the drafts after a rejection were never judged and count for nothing.
 * Averaging per judged draft (not numAccepted / numDrafted per step) is what estimates the i.i.d. rate a that
 * `chooseDraftLength` assumes: the per-step ratio would count unjudged drafts as failures and underestimate a.
 */
export class AcceptanceTracker {
  private rate: number;
  private readonly smoothing: number;

  constructor(options: AcceptanceTrackerOptions = {}) {
    const prior = options.prior ?? DEFAULT_ACCEPTANCE_PRIOR;
    const smoothing = options.smoothing ?? DEFAULT_ACCEPTANCE_SMOOTHING;
    if (!(prior >= 0 && prior <= 1)) throw new RangeError(`prior must be in [0, 1]; got ${prior}`);
    if (!(smoothing > 0 && smoothing <= 1)) throw new RangeError(`smoothing must be in (0, 1]; got ${smoothing}`);
    this.rate = prior;
    this.smoothing = smoothing;
  }

  /** The current estimate, in [0, 1]. */
  get acceptanceRate(): number {
    return this.rate;
  }

  /** Records one verification step that drafted `numDrafted` tokens and accepted the first `numAccepted`. */
  observe(numDrafted: number, numAccepted: number): void {
    if (!Number.isInteger(numDrafted) || numDrafted < 0)
      throw new RangeError(`numDrafted must be an integer ≥ 0; got ${numDrafted}`);
    if (!Number.isInteger(numAccepted) || numAccepted < 0 || numAccepted > numDrafted) {
      throw new RangeError(`numAccepted must be an integer in [0, ${numDrafted}]; got ${numAccepted}`);
    }
    const keep = 1 - this.smoothing;
    // numAccepted updates toward 1 in closed form: 1 − rate shrinks by `keep` per success.
    this.rate = 1 - (1 - this.rate) * keep ** numAccepted;
    if (numAccepted < numDrafted) this.rate *= keep;
  }
}

export interface DraftLengthInput {
  /** Per-draft-token acceptance rate a in [0, 1], taken as i.i.d. across positions. */
  readonly acceptanceRate: number;
  /** Largest K to consider, ≥ 0. */
  readonly maxDraft: number;
  /** Milliseconds of one target step evaluating `numTokens` positions for this request (1 + K). Must be > 0. */
  readonly targetStepMs: (numTokens: number) => number;
  /** Milliseconds to propose one draft token; 0 for prompt lookup. */
  readonly draftStepMs: number;
}

/**
 * Tokens a step is expected to yield with K drafts at acceptance a: draft i is emitted when the first i + 1 are
 * accepted, plus the always-present final token, so E = Σ_{i=0..K} a^i = (1 − a^(K+1)) / (1 − a), and K + 1 at a = 1.
 */
export function expectedTokensPerStep(acceptanceRate: number, numDraft: number): number {
  if (acceptanceRate >= 1) return numDraft + 1;
  return (1 - acceptanceRate ** (numDraft + 1)) / (1 - acceptanceRate);
}

/**
 * The K in 0..maxDraft that maximises expected tokens per millisecond, E(K) / (targetStepMs(1 + K) + K ×
 * draftStepMs). Ties go to the smaller K, which costs less KV and wastes less work on rejection. 0 means do not
 * speculate this step.
 */
export function chooseDraftLength(input: DraftLengthInput): number {
  const { acceptanceRate, maxDraft, targetStepMs, draftStepMs } = input;
  if (!(acceptanceRate >= 0 && acceptanceRate <= 1))
    throw new RangeError(`acceptanceRate must be in [0, 1]; got ${acceptanceRate}`);
  if (!Number.isInteger(maxDraft) || maxDraft < 0)
    throw new RangeError(`maxDraft must be an integer ≥ 0; got ${maxDraft}`);
  if (!(draftStepMs >= 0 && Number.isFinite(draftStepMs)))
    throw new RangeError(`draftStepMs must be finite and ≥ 0; got ${draftStepMs}`);

  let bestDraft = 0;
  let bestRate = -Infinity;
  for (let numDraft = 0; numDraft <= maxDraft; numDraft += 1) {
    const stepMs = targetStepMs(1 + numDraft) + numDraft * draftStepMs;
    if (!(stepMs > 0 && Number.isFinite(stepMs))) {
      throw new RangeError(`a step with ${numDraft} drafts must cost a positive finite time; got ${stepMs} ms`);
    }
    const tokensPerMs = expectedTokensPerStep(acceptanceRate, numDraft) / stepMs;
    if (tokensPerMs > bestRate) {
      bestRate = tokensPerMs;
      bestDraft = numDraft;
    }
  }
  return bestDraft;
}
