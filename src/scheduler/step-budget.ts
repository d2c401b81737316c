/**
 * One step while `schedule()` plans it: the token budget, the prompt-token budget beside decoders (vLLM's bounded
 * chunked prefill), and the items planned so far. Preempting a request takes its item back out of the step.
 */
import type { StepItem, TokenId } from "../engine/engine.ts";
import type { CoreOutput } from "./core-output.ts";
import type { Request } from "./request.ts";

export interface ScheduledItem {
  readonly request: Request;
  readonly item: StepItem;
  /** Draft tokens at the end of `item.tokens`, to verify from its logits. */
  readonly drafts: readonly TokenId[];
}

export interface StepPlan {
  readonly scheduled: readonly ScheduledItem[];
  readonly numTokens: number;
  /** Of `numTokens`, those that are prompt tokens (prefill). */
  readonly numPromptTokens: number;
  /** Requests finished while planning (aborted ones, expired ones), for the output processor. */
  readonly finished: readonly CoreOutput[];
}

/** The tokens a step carries: what the engine evaluates, drafts included. */
export function numTokensOf(scheduled: readonly ScheduledItem[]): number {
  return scheduled.reduce((sum, entry) => sum + entry.item.tokens.length, 0);
}

export class StepBudget {
  private numTokensLeft: number;
  private numPrefillTokensLeft: number;
  /** Tokens left for newly admitted requests; null until the waiting pass starts. */
  private numAdmitTokensLeft: number | null = null;
  private readonly items: ScheduledItem[] = [];
  private hasPreemptedAny = false;

  /** `maxNumPrefillTokens` applies only with `hasDecoders`; alone, prompts get the whole budget. */
  constructor(maxNumTokens: number, maxNumPrefillTokens: number | undefined, hasDecoders: boolean) {
    this.numTokensLeft = maxNumTokens;
    this.numPrefillTokensLeft = hasDecoders ? (maxNumPrefillTokens ?? maxNumTokens) : maxNumTokens;
  }

  /** Tokens left for the running pass. */
  get numLeft(): number {
    return this.numTokensLeft;
  }

  get numPrefillLeft(): number {
    return this.numPrefillTokensLeft;
  }

  /** Whether a request was preempted while this step was planned: the pool is full, nothing new is admitted. */
  get hasPreempted(): boolean {
    return this.hasPreemptedAny;
  }

  /** A running request's chunk, from the running pass. */
  add(entry: ScheduledItem, isPrefill: boolean): void {
    this.items.push(entry);
    this.numTokensLeft -= entry.item.tokens.length;
    if (isPrefill) this.numPrefillTokensLeft -= entry.item.tokens.length;
  }

  /**
   * Starts the waiting pass: admissions get what both budgets have left. Returns that; `numAdmitLeft` follows it.
   */
  startAdmission(): number {
    this.numAdmitTokensLeft = Math.min(this.numTokensLeft, this.numPrefillTokensLeft);
    return this.numAdmitTokensLeft;
  }

  get numAdmitLeft(): number {
    return this.numAdmitTokensLeft ?? 0;
  }

  /** A newly admitted request's chunk, from the waiting pass. */
  admit(entry: ScheduledItem): void {
    this.items.push(entry);
    this.numAdmitTokensLeft = this.numAdmitLeft - entry.item.tokens.length;
  }

  /**
   * `request` was preempted: its item leaves the step and its tokens go back to the running pass's budget (not
   * to the prompt budget, nor to admissions under way).
   */
  onPreempted(request: Request): void {
    this.hasPreemptedAny = true;
    const index = this.items.findIndex((entry) => entry.request === request);
    if (index >= 0) this.numTokensLeft += this.items.splice(index, 1)[0]!.item.tokens.length;
  }

  plan(finished: readonly CoreOutput[]): StepPlan {
    const numPromptTokens = this.items.reduce(
      (sum, { request, item }) =>
        sum + Math.max(0, Math.min(request.promptTokens.length, item.startPos + item.tokens.length) - item.startPos),
      0,
    );
    return {
      scheduled: [...this.items],
      // Counted, not derived from the budgets: a preemption during admission refunds tokens no admission can use.
      numTokens: numTokensOf(this.items),
      numPromptTokens,
      finished,
    };
  }
}
