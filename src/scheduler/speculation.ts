/**
 * The scheduler's side of speculative decoding: which requests speculate, the drafts they carry in a step (proposed
 * while the step is planned; in draft mode drafted afterwards, for the whole step at once), and verification of
 * the target's logits. The speculator does the work; this keeps the requests' side of it.
 */
import type { TokenId } from "../engine/engine.ts";
import type { VerifyResult } from "../spec/rejection-sampler.ts";
import { PENDING_DRAFT, type SpecRequest, type SpecStats, type Speculator } from "../spec/speculator.ts";
import type { Request, RequestId } from "./request.ts";
import { numTokensOf, type ScheduledItem, type StepPlan } from "./step-budget.ts";

export interface SpeculationOptions {
  readonly speculator: Speculator | null;
  /** Told about every failed draft-model step; that step runs without drafts. */
  readonly onDraftError?: (error: Error) => void;
}

/** The step as the speculator's cost model sees it: its tokens so far and the sequences it decodes. */
export interface DraftStep {
  numTokens: number;
  readonly numSequences: number;
}

export class Speculation {
  private readonly speculator: Speculator | null;
  private readonly onDraftError: ((error: Error) => void) | undefined;

  constructor(options: SpeculationOptions) {
    this.speculator = options.speculator;
    this.onDraftError = options.onDraftError;
  }

  /** Requests without logprobs speculate: the speculator samples them from raw logits. */
  isSpeculative(request: Request): boolean {
    return this.speculator !== null && request.params.sampling.topLogprobs === null;
  }

  /**
   * How many logits rows a sampling step of `request` carrying `numDrafts` drafts returns for verification, or null
   * when it samples natively. A constrained request's step without drafts samples natively: the native sampler checks
   * its grammar for the sampled token alone, while verification needs the whole vocabulary's mask.
   */
  logitsToReturn(request: Request, numDrafts: number): number | null {
    if (!this.isSpeculative(request)) return null;
    if (numDrafts === 0 && request.params.sampling.grammar != null) return null;
    return 1 + numDrafts;
  }

  /**
   * Drafts for a decoding request, none when it does not speculate or they would not fit: the step's `budget`,
   * max_tokens and `maxRequestTokens` each keep room for the token verification adds.
   */
  proposeDrafts(request: Request, budget: number, maxRequestTokens: number, step: DraftStep): TokenId[] {
    const speculator = this.speculator;
    if (speculator === null || !this.isSpeculative(request) || request.numComputedTokens !== request.numTokens - 1)
      return [];
    const limit = Math.min(
      budget - 1,
      request.params.maxTokens - request.outputTokens.length - 1,
      maxRequestTokens - request.numTokens - 1,
    );
    return limit > 0 ? speculator.propose(specRequestOf(request), limit, step) : [];
  }

  /**
   * Draft mode: fills in the draft tokens the plan left pending, drafted by the draft model for all requests of the
   * step at once. A failed draft step costs the step its drafts, never a request: it is counted in `SpecStats` and
   * reported to `onDraftError`.
   */
  async prepareDrafts(plan: StepPlan): Promise<StepPlan> {
    const speculator = this.speculator;
    const pending = plan.scheduled.filter((entry) => entry.drafts.some((token) => token === PENDING_DRAFT));
    if (speculator === null || pending.length === 0) return plan;
    let drafted: Map<RequestId, TokenId[]>;
    try {
      drafted = await speculator.draftPending(
        pending.map(({ request, drafts }) => ({ request: specRequestOf(request), numDraft: drafts.length })),
      );
    } catch (error) {
      this.onDraftError?.(error instanceof Error ? error : new Error(String(error)));
      drafted = new Map();
    }
    const scheduled = plan.scheduled.map((entry): ScheduledItem => {
      if (!pending.includes(entry)) return entry;
      const drafts = drafted.get(entry.request.id) ?? [];
      const realTokens = entry.item.tokens.slice(0, entry.item.tokens.length - entry.drafts.length);
      const { returnLogits: _planned, ...item } = entry.item;
      const returnLogits = this.logitsToReturn(entry.request, drafts.length);
      return {
        ...entry,
        drafts,
        item: { ...item, tokens: [...realTokens, ...drafts], ...(returnLogits === null ? {} : { returnLogits }) },
      };
    });
    return { ...plan, scheduled, numTokens: numTokensOf(scheduled) };
  }

  /** The tokens the target's `logits` give after `drafts`: accepted drafts and one more; null without speculation. */
  verify(
    request: Request,
    drafts: readonly TokenId[],
    logits: readonly Float32Array[],
    masks: readonly Uint8Array[] | null,
  ): VerifyResult | null {
    return this.speculator?.verify(specRequestOf(request), drafts, logits, masks) ?? null;
  }

  /** A preempted request recomputes from scratch, and so does its draft sequence. */
  onPreempt(request: Request): void {
    this.speculator?.onPreempt(request.id);
  }

  forget(request: Request): void {
    this.speculator?.forget(request.id);
  }

  /** How long a step of `numTokens` took, for the speculator's choice of draft lengths. */
  observeStep(numTokens: number, durationMs: number): void {
    this.speculator?.observeStep(numTokens, durationMs);
  }

  stats(): SpecStats | null {
    return this.speculator?.stats() ?? null;
  }
}

function specRequestOf(request: Request): SpecRequest {
  return {
    id: request.id,
    sampling: request.params.sampling,
    allTokens: request.allTokens,
    outputTokens: request.outputTokens,
  };
}
