/** What one step's engine output gives a request in the core: the tokens it yields. */
import type { SequenceEngine, StepOutput, TokenId } from "../engine/engine.ts";
import type { Request } from "./request.ts";
import type { Speculation } from "./speculation.ts";

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
  const verified = output.logits == null ? null : speculation.verify(request, drafts, output.logits);
  if (verified === null) return output.token === null ? null : [output.token];
  request.numComputedTokens += verified.numAccepted;
  if (verified.numAccepted < drafts.length) {
    if (request.sequenceId === null) throw new Error(`request ${request.id} is running without a sequence`);
    // Rejected drafts' cells go now; their blocks stay with the request, which grows into them.
    engine.truncateSequence(request.sequenceId, request.numComputedTokens);
  }
  return verified.tokens;
}
