import type { SampledLogprobs, TokenId, TokenLogprob } from "./engine.ts";

/**
 * Turns the addon's flat `[token, probability, token, probability, …]` list (sorted, most likely first) into the
 * sampled token's log-probability and the `topN` best alternatives.
 */
export function toSampledLogprobs(token: TokenId, flat: readonly number[], topN: number): SampledLogprobs {
  const top: TokenLogprob[] = [];
  let logprob = Number.NEGATIVE_INFINITY;
  for (let index = 0; index + 1 < flat.length; index += 2) {
    const candidate = flat[index] ?? -1;
    const probability = flat[index + 1] ?? 0;
    const candidateLogprob = probability > 0 ? Math.log(probability) : Number.NEGATIVE_INFINITY;
    if (top.length < topN) top.push({ token: candidate as TokenId, logprob: candidateLogprob });
    if (candidate === token) logprob = candidateLogprob;
    if (top.length >= topN && logprob !== Number.NEGATIVE_INFINITY) break;
  }
  return { logprob, top };
}
