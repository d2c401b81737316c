/**
 * What the core (scheduler and engine loop) reports about one request, as vLLM's engine core does: token ids and
 * token-level finishes only. Text, stop strings and per-request timing are the output processor's.
 */
import type { SampledLogprobs, TokenId } from "../engine/engine.ts";
import type { FinishReason, Request, RequestId } from "./request.ts";

export interface CoreOutput {
  readonly requestId: RequestId;
  /**
   * Tokens the request gained in a step: one sampled token, or verified drafts and one more. A token-level stop
   * ends them: its token is the last.
   */
  readonly newTokens: readonly TokenId[];
  /** Logprobs of the step's sampled token, when the request asked for them (never under speculation). */
  readonly logprobs: SampledLogprobs | null;
  /**
   * Set when the core finished the request: "stop" at a stop token (always the last of `newTokens`), "length" at
   * max_tokens or a full context, "abort", or "error" with `error`.
   */
  readonly finishReason: FinishReason | null;
  readonly error: Error | null;
  /** Prompt tokens served from the prefix cache when the request was first scheduled. */
  readonly numCachedTokens: number;
  readonly numPreemptions: number;
  /** When the request first got a sequence, on the scheduler's clock; null if it never has. */
  readonly scheduledAtMs: number | null;
}

/**
 * Takes one request's output while the scheduler applies a step. Returns null, or the number of the output's new
 * tokens up to and including the one that completed a stop string: the scheduler then finishes the request there,
 * before it applies the next request's output, as it would at a stop token.
 */
export type CoreOutputHandler = (output: CoreOutput) => number | null;

/** A request's output as it stands: its finish reason if the core finished it, and the tokens it gained. */
export function coreOutputOf(
  request: Request,
  newTokens: readonly TokenId[],
  logprobs: SampledLogprobs | null,
  error: Error | null,
): CoreOutput {
  return {
    requestId: request.id,
    newTokens,
    logprobs,
    finishReason: request.finishReason,
    error,
    numCachedTokens: request.numCachedTokens,
    numPreemptions: request.numPreemptions,
    scheduledAtMs: request.scheduledAtMs,
  };
}
