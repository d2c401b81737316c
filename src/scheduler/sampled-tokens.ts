/**
 * What one step's engine output gives a request in the core: the tokens it yields, and where a token-level stop
 * (a stop token, max_tokens, a full context) cuts them.
 */
import type { SequenceEngine, StepOutput, TokenId } from "../engine/engine.ts";
import type { FinishReason, Request } from "./request.ts";
import type { Speculation } from "./speculation.ts";
import { checkStop } from "./stop-checker.ts";

/**
 * The sampled token, or under speculation the verified drafts plus one (their KV cells are then computed, and the
 * rejected drafts' cells dropped); null when the sampler gave no token.
 */
export function sampledTokens(
  request: Request,
  drafts: readonly TokenId[],
  output: StepOutput,
  speculation: Speculation,
  engine: SequenceEngine,
): TokenId[] | null {
  const verified =
    output.logits == null ? null : speculation.verify(request, drafts, output.logits, output.grammarMasks ?? null);
  if (verified === null) return output.token === null ? null : [output.token];
  if (request.sequenceId === null) throw new Error(`request ${request.id} is running without a sequence`);
  // Chosen here, not by the native sampler: the sequence's penalties and grammar learn them from us.
  engine.acceptTokens(request.sequenceId, verified.tokens);
  request.numComputedTokens += verified.numAccepted;
  if (verified.numAccepted < drafts.length) {
    // Rejected drafts' cells go now; their blocks stay with the request, which grows into them.
    engine.truncateSequence(request.sequenceId, request.numComputedTokens);
  }
  return verified.tokens;
}

export interface Appended {
  readonly tokens: readonly TokenId[];
  /** Why the last of `tokens` ends the request; null when it goes on. */
  readonly stop: FinishReason | null;
}

/** Appends `tokens` to the request's output up to the first token-level stop. */
export function appendUntilStop(request: Request, tokens: readonly TokenId[], engine: SequenceEngine): Appended {
  const appended: TokenId[] = [];
  for (const token of tokens) {
    request.appendOutput(token);
    appended.push(token);
    const stop = checkStop({
      token,
      isEndOfGeneration: engine.isEndOfGeneration(token),
      stopTokens: request.params.stopTokens,
      ignoreEos: request.params.ignoreEos,
      numOutputTokens: request.outputTokens.length,
      maxTokens: request.params.maxTokens,
      numTokens: request.numTokens,
      contextSize: engine.info.contextSize,
    });
    if (stop !== null) return { tokens: appended, stop };
  }
  return { tokens: appended, stop: null };
}
