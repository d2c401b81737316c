/**
 * Speculative decoding for the scheduler: per request, propose draft tokens (prompt lookup over the request's own
 * tokens), and after the target evaluated them in its normal step, verify them from the raw logits with the
 * request's own seeded random stream. Requests under speculation are always sampled here, also in steps without
 * drafts, so one random stream serves the whole request.
 *
 * The draft length adapts per request: an acceptance estimate and the measured cost of a step choose the K that
 * maximises expected tokens per millisecond, and K = 0 (no drafts) wins when drafts are rarely accepted or the
 * batch is already large.
 */
import type { SamplingParams, TokenId } from "../engine/engine.ts";
import type { RequestId } from "../engine/ids.ts";
import { SeededRandom, seedAtPosition } from "../engine/seeded-random.ts";
import { AcceptanceTracker, chooseDraftLength, expectedTokensPerStep } from "./draft-length.ts";
import type { DraftModel, Drafts } from "./draft-model.ts";
import { proposeNgram } from "./ngram-proposer.ts";
import { type VerifyResult, verifyBySampling, verifyGreedy, verifySampled } from "./rejection-sampler.ts";
import { StepCostModel } from "./step-cost.ts";
import {
  applyBias,
  argmax,
  maskLogits,
  type TargetSamplingConfig,
  toConstrainedDistribution,
  toDistribution,
} from "./target-distribution.ts";

export type SpecMode = "ngram" | "draft" | "off";

export interface SpeculatorOptions {
  readonly maxDraft: number;
  readonly minNgram: number;
  readonly maxNgram: number;
  /** Draft with this model instead of prompt lookup. */
  readonly draftModel?: DraftModel | null;
  /** Choose K per request and step (default); false always drafts `maxDraft` tokens where they fit. */
  readonly isAdaptive?: boolean;
}

/** Stands for a draft token the draft model has yet to produce (`propose` in draft mode). */
export const PENDING_DRAFT = -1 as TokenId;

/** Cumulative counts with vLLM's meanings, for the metrics. */
export interface SpecStats {
  /** Steps in which a request carried drafts. */
  readonly numDrafts: number;
  readonly numDraftTokens: number;
  readonly numAcceptedTokens: number;
  /** Accepted tokens by draft position (0-based). */
  readonly acceptedPerPosition: readonly number[];
  /** Draft-model steps that failed; each cost its step the drafts, never a request. */
  readonly numDraftFailures: number;
}

interface RequestState {
  readonly tracker: AcceptanceTracker;
  /** Draft mode: this request's random stream, and the distributions its pending drafts were drawn from. */
  readonly random: SeededRandom;
  draftProbs: (Float32Array | null)[] | null;
  /** Consecutive steps the adaptive length chose no drafts. */
  stepsWithoutDraft: number;
}

/**
 * How often a request that stopped drafting tries one draft, to notice that acceptance has improved. Rare, since
 * under load a probe costs a draft catch-up over every token since the last one.
 */
const PROBE_EVERY_STEPS = 64;
const MAX_SEQUENCES_TO_PROBE = 4;

/** The uniform for output position `index` of a request seeded `seed`: counter-based, so no state to carry. */
function uniformAt(seed: number, index: number): number {
  return seedAtPosition(seed, index) / 0x1_0000_0000;
}

/** What the scheduler knows of a request when it asks for drafts. */
export interface SpecRequest {
  readonly id: RequestId;
  readonly sampling: SamplingParams;
  readonly allTokens: readonly TokenId[];
  readonly outputTokens: readonly TokenId[];
}

export class Speculator {
  private readonly options: SpeculatorOptions;
  private readonly states = new Map<RequestId, RequestState>();
  private readonly cost = new StepCostModel();
  private numDrafts = 0;
  private numDraftTokens = 0;
  private numAcceptedTokens = 0;
  private numDraftFailures = 0;
  private readonly acceptedPerPosition: number[];

  constructor(options: SpeculatorOptions) {
    this.options = options;
    this.acceptedPerPosition = new Array<number>(options.maxDraft).fill(0);
  }

  /** Feeds the step-cost model: every step's token count and duration. */
  observeStep(numTokens: number, durationMs: number): void {
    this.cost.observe(numTokens, durationMs);
  }

  /**
   * Draft tokens for a decoding request, at most `limit` (its remaining tokens and context). `step` describes the
   * rest of the step: its tokens and how many sequences it decodes. K is chosen for the whole step's tokens per
   * millisecond, not this request's alone: K more tokens slow every sequence of the step, so under heavy load
   * drafts must earn more than they cost everyone, and speculation switches itself off.
   */
  propose(
    request: SpecRequest,
    limit: number,
    step: { readonly numTokens: number; readonly numSequences: number },
  ): TokenId[] {
    const maxDraft = Math.min(this.options.maxDraft, limit);
    if (maxDraft <= 0) return [];
    const state = this.stateOf(request);
    const others = Math.max(0, step.numSequences - 1);
    // For one sequence this is chooseDraftLength's own objective; others' tokens join the numerator.
    // A draft model that fell behind the request must catch up before drafting: that prefill is part of K ≥ 1.
    const catchUpMs = this.options.draftModel?.catchUpMs(request.id, request.allTokens.length) ?? 0;
    const numDraft =
      this.options.isAdaptive === false
        ? maxDraft
        : chooseDraftLength({
            acceptanceRate: state.tracker.acceptanceRate,
            maxDraft,
            targetStepMs: (numTokens) => {
              const expected = expectedTokensPerStep(state.tracker.acceptanceRate, numTokens - 1);
              const stepMs = this.cost.stepMs(step.numTokens + numTokens) + (numTokens > 1 ? catchUpMs : 0);
              return (stepMs * expected) / (others + expected);
            },
            draftStepMs: this.options.draftModel?.stepMs ?? 0,
          });
    // K = 0 learns nothing about acceptance, so a request that stopped drafting probes with one draft now and then
    // — only in small steps: under load a probe delays every other sequence of the step.
    state.stepsWithoutDraft = numDraft === 0 ? state.stepsWithoutDraft + 1 : 0;
    if (numDraft === 0 && (state.stepsWithoutDraft < PROBE_EVERY_STEPS || step.numSequences > MAX_SEQUENCES_TO_PROBE))
      return [];
    if (numDraft === 0) state.stepsWithoutDraft = 0;
    const numDrafted = Math.max(1, numDraft);
    if (this.options.draftModel != null) return new Array<TokenId>(numDrafted).fill(PENDING_DRAFT);
    return proposeNgram(request.allTokens, {
      minNgram: this.options.minNgram,
      maxNgram: this.options.maxNgram,
      numDraft: numDrafted,
    });
  }

  /**
   * The tokens a step produced for `request`: accepted drafts, then one recovered or bonus token. `logits` holds
   * the target's raw logits after the last computed token and after each draft (drafts.length + 1 entries).
   */
  /** Draft mode: the draft model's tokens for every request `propose` left pending, in one batch per draft step. */
  async draftPending(
    requests: readonly { readonly request: SpecRequest; readonly numDraft: number }[],
  ): Promise<Map<RequestId, TokenId[]>> {
    const draftModel = this.options.draftModel;
    if (draftModel == null || requests.length === 0) return new Map();
    let drafts: Map<RequestId, Drafts>;
    try {
      drafts = await draftModel.draft(
        requests.map(({ request, numDraft }) => ({ ...request, numDraft, random: this.stateOf(request).random })),
      );
    } catch (error) {
      this.numDraftFailures += 1;
      throw error;
    }
    const tokens = new Map<RequestId, TokenId[]>();
    for (const { request } of requests) {
      const drafted = drafts.get(request.id);
      this.stateOf(request).draftProbs = drafted?.probs ?? null;
      tokens.set(request.id, drafted?.tokens ?? []);
    }
    return tokens;
  }

  /**
   * `masks`: per logits row, the tokens the request's grammar allows there, or null without a grammar; the target
   * distribution is then the one the native sampler draws from under that grammar.
   */
  verify(
    request: SpecRequest,
    drafts: readonly TokenId[],
    logits: readonly Float32Array[],
    masks: readonly Uint8Array[] | null = null,
  ): VerifyResult {
    if (logits.length !== drafts.length + 1)
      throw new Error(`verification needs ${drafts.length + 1} logit rows, got ${logits.length}`);
    if (masks !== null && masks.length !== logits.length)
      throw new Error(`verification needs ${logits.length} grammar masks, got ${masks.length}`);
    const distributionAt = (row: number, history: readonly TokenId[]): Float32Array => {
      const mask = masks?.[row];
      return mask === undefined
        ? toDistribution(logits[row]!, sampling, history)
        : toConstrainedDistribution(logits[row]!, sampling, history, mask);
    };
    const state = this.stateOf(request);
    const sampling = request.sampling;
    const draftProbs = state.draftProbs;
    state.draftProbs = null;
    let result: VerifyResult;
    if (sampling.temperature <= 0 && sampling.presencePenalty === 0 && sampling.frequencyPenalty === 0) {
      result = verifyGreedy(
        drafts,
        logits.map((row, index) => greedyArgmax(row, sampling, masks?.[index] ?? null)),
      );
    } else if (draftProbs !== null && draftProbs.length === drafts.length) {
      // Drafts drawn from the draft model's q: Leviathan/Chen acceptance min(1, p/q), residual on rejection.
      const history = [...request.outputTokens, ...drafts];
      const numOutput = request.outputTokens.length;
      const targetProbs = logits.map((_, index) => distributionAt(index, history.slice(0, numOutput + index)));
      result = verifySampled({ draftTokens: drafts, draftProbs, targetProbs, random: state.random });
    } else {
      // Position i's distribution sees the drafts before it as generated, as the non-speculative path would.
      const numOutput = request.outputTokens.length;
      const history = [...request.outputTokens, ...drafts];
      result = verifyBySampling(
        drafts,
        (index) => distributionAt(index, history.slice(0, numOutput + index)),
        (index) => uniformAt(sampling.seed, numOutput + index),
      );
    }
    // The draft model's KV keeps the verified tokens only: the request's tokens, then the accepted drafts.
    this.options.draftModel?.afterVerify(request.id, request.allTokens.length + result.numAccepted);
    if (drafts.length > 0) {
      state.tracker.observe(drafts.length, result.numAccepted);
      this.numDrafts += 1;
      this.numDraftTokens += drafts.length;
      this.numAcceptedTokens += result.numAccepted;
      for (let position = 0; position < result.numAccepted; position++)
        this.acceptedPerPosition[position] = (this.acceptedPerPosition[position] ?? 0) + 1;
    }
    return result;
  }

  forget(requestId: RequestId): void {
    this.states.delete(requestId);
    this.options.draftModel?.release(requestId);
  }

  /** A preempted request recomputes from scratch; its draft sequence goes too (the draft pool counts on it). */
  onPreempt(requestId: RequestId): void {
    this.options.draftModel?.release(requestId);
  }

  async dispose(): Promise<void> {
    await this.options.draftModel?.dispose();
  }

  stats(): SpecStats {
    return {
      numDrafts: this.numDrafts,
      numDraftTokens: this.numDraftTokens,
      numAcceptedTokens: this.numAcceptedTokens,
      acceptedPerPosition: [...this.acceptedPerPosition],
      numDraftFailures: this.numDraftFailures,
    };
  }

  private stateOf(request: SpecRequest): RequestState {
    let state = this.states.get(request.id);
    if (state === undefined) {
      // Requests start their probe counters at different points, so they do not all probe in the same step.
      const offset =
        [...request.id].reduce((sum, char) => (sum * 31 + char.charCodeAt(0)) >>> 0, 0) % PROBE_EVERY_STEPS;
      state = {
        tracker: new AcceptanceTracker({}),
        random: new SeededRandom(request.sampling.seed),
        draftProbs: null,
        stepsWithoutDraft: offset,
      };
      this.states.set(request.id, state);
    }
    return state;
  }
}

/** The greedy sampler's token: the argmax after biases, among the tokens the grammar allows. */
function greedyArgmax(logits: Float32Array, sampling: TargetSamplingConfig, mask: Uint8Array | null): TokenId {
  const biased = applyBias(logits, sampling);
  return argmax(mask === null ? biased : maskLogits(biased, mask));
}
