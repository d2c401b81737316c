/**
 * How a sequence's sampling settings map onto llama.cpp's sampler chain.
 */
import type { SamplingParams, TokenId } from "./engine.ts";
import type { NativeGrammarState, NativeSamplerConfig } from "./llama-internals.ts";
import { seedAtPosition } from "./seeded-random.ts";

/**
 * The native sampler's settings before sampling the token after `history` (the tokens generated so far). A sampled
 * token draws from a random stream seeded for its output position, so a sequence resumed on a new sampler after a
 * preemption continues exactly as it would have. Every call carries the bias and the grammar state: a config without
 * them would drop them from the sampler.
 */
export function nativeSamplerConfig(
  sampling: SamplingParams,
  history: readonly TokenId[],
  penaltyWindow: number,
  grammarState: NativeGrammarState | null,
): NativeSamplerConfig {
  const config: NativeSamplerConfig = {
    seed: sampling.temperature > 0 ? seedAtPosition(sampling.seed, history.length) : sampling.seed >>> 0,
  };
  if (sampling.temperature > 0) {
    config.temperature = sampling.temperature;
    if (sampling.topK > 0) config.topK = sampling.topK;
    if (sampling.topP < 1) config.topP = sampling.topP;
    if (sampling.minP > 0) config.minP = sampling.minP;
  }
  if (hasPenalties(sampling)) {
    config.repeatPenalty = 1;
    config.repeatPenaltyPresencePenalty = sampling.presencePenalty;
    config.repeatPenaltyFrequencyPenalty = sampling.frequencyPenalty;
    // OpenAI's penalties count every generated token, not a recent window; a sequence never holds more than this.
    config.repeatPenaltyMaxTokens = penaltyWindow;
    config.repeatPenaltyTokens = Uint32Array.from(history);
  }
  const bias = sampling.logitBias;
  if (bias != null && bias.size > 0) {
    config.tokenBiasKeys = Uint32Array.from(bias.keys());
    config.tokenBiasValues = Float32Array.from(bias.values());
  }
  if (grammarState !== null) config.grammarEvaluationState = grammarState;
  return config;
}

/**
 * Whether the settings change from one sampled token to the next (the seed of its position, the penalised
 * history), so the sampler must be configured anew before each token.
 */
export function isConfigPerToken(sampling: SamplingParams): boolean {
  return sampling.temperature > 0 || hasPenalties(sampling);
}

/**
 * Whether the token is the argmax of the raw logits, so the decode's own native task can pick it: greedy, without
 * penalties, bias, grammar or logprobs.
 */
export function isPlainGreedy(sampling: SamplingParams, hasGrammar: boolean): boolean {
  return (
    sampling.temperature <= 0 &&
    !hasPenalties(sampling) &&
    (sampling.logitBias == null || sampling.logitBias.size === 0) &&
    sampling.topLogprobs === null &&
    !hasGrammar
  );
}

function hasPenalties(sampling: SamplingParams): boolean {
  return sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;
}
