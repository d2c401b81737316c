/**
 * The distribution the non-speculative sampler draws the next token from, rebuilt from raw logits so the verifier
 * can accept or reject draft tokens against exactly that distribution.
 *
 * Order, as node-llama-cpp 3.21.1 builds its native chain (`AddonSampler::rebuildChainIfNeeded` in
 * `llama/addon/AddonSampler.cpp`, with the samplers' semantics from llama.cpp's `src/llama-sampler.cpp`):
 *
 *   0. logit biases added (the `logit_bias` sampler, first in the chain);
 *   1. presence/frequency penalties on the logits (the `penalties` sampler with repeat penalty 1, over the whole
 *      generated history, as `native-sampler-config.ts` configures it);
 *   2. temperature ≤ 0: the greedy sampler, argmax of the penalised logits, and nothing below applies;
 *   3. top-k: keep the k highest logits (k ≤ 0 or k ≥ vocabulary: off);
 *   4. top-p: softmax of the survivors at temperature 1, keep the smallest best-first prefix whose cumulative
 *      probability reaches p, at least one token (p ≥ 1 or p < 0: off);
 *   5. min-p: keep tokens with logit ≥ max logit + ln(min_p), i.e. p ≥ min_p × p_max, at least one (≤ 0: off);
 *   6. temperature: logits / T, then the `dist` sampler's softmax over the survivors.
 *
 * So top-k, top-p and min-p all see temperature-1 probabilities; temperature only reshapes what survives.
 * Differences from native, all below float rounding or unspecified there: sums run in double precision, and
 * tokens with equal logits rank by lower id (llama.cpp's partial sort leaves them unordered).
 */
import type { TokenId } from "../engine/engine.ts";
import { allTokenIds, selectTopTokens, sortTokens } from "./top-tokens.ts";

/** The sampling settings that shape the distribution; `SamplingParams` from the engine seam fits as is. */
export interface TargetSamplingConfig {
  /** ≤ 0 means greedy. */
  readonly temperature: number;
  /** ≤ 0 disables top-k. */
  readonly topK: number;
  /** Values outside [0, 1) disable top-p. */
  readonly topP: number;
  /** ≤ 0 disables min-p. */
  readonly minP: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  /** Added to these tokens' logits first; absent or null: none. */
  readonly logitBias?: ReadonlyMap<TokenId, number> | null;
}

/** Top-p first ranks only this many best tokens; llama.cpp starts at 256 too, since top-p rarely needs more. */
const TOP_P_FIRST_WINDOW = 256;
/** Logit histogram resolution when the first window falls short: more buckets sort fewer surplus tokens. */
const TOP_P_BUCKETS = 4096;

/**
 * The token with the highest logit, the lowest id on ties (as llama.cpp's greedy sampler scans in id order).
 * A NaN logit never wins over a number.
 */
export function argmax(logits: Float32Array): TokenId {
  if (logits.length === 0) throw new RangeError("argmax of an empty logit vector");
  let best = 0;
  let bestLogit = logits[0] as number;
  for (let i = 1; i < logits.length; i += 1) {
    const logit = logits[i] as number;
    if (logit > bestLogit || (Number.isNaN(bestLogit) && !Number.isNaN(logit))) {
      best = i;
      bestLogit = logit;
    }
  }
  return best as TokenId;
}

/**
 * Probabilities over the whole vocabulary (zeros for removed tokens) of the next token after `history`, the tokens
 * generated so far (penalties count generated tokens only, never the prompt). Greedy gives a one-hot.
 *
 * Cost: O(V) for validation and penalties, O(V log k) for top-k, O(V log 256) for most top-p calls (plus, when the
 * best 256 tokens do not reach p, O(V) for a histogram and O(m log m) to sort the m tokens it keeps), O(V) for
 * min-p and the softmax.
 */
export function toDistribution(
  logits: Float32Array,
  config: TargetSamplingConfig,
  history: readonly TokenId[],
): Float32Array {
  const vocabSize = logits.length;
  const penalized = applyPenalties(applyBias(logits, config), config, history);
  checkLogits(penalized);
  const probs = new Float32Array(vocabSize);
  if (!(config.temperature > 0)) {
    probs[argmax(penalized)] = 1;
    return probs;
  }

  // Survivors so far: null is the whole vocabulary in id order; after top-k or top-p they are sorted best first.
  let ids: Int32Array | null = null;
  let isSorted = false;
  if (config.topK > 0 && config.topK < vocabSize) {
    ids = selectTopTokens(penalized, null, config.topK);
    isSorted = true;
  }
  if (config.topP >= 0 && config.topP < 1) {
    ids = keepTopP(penalized, ids, isSorted, config.topP);
    isSorted = true;
  }
  if (config.minP > 0) ids = keepMinP(penalized, ids, isSorted, config.minP);
  writeSoftmax(penalized, ids, config.temperature, probs);
  return probs;
}

/**
 * A token drawn by inverse CDF: the first token whose cumulative weight exceeds `u` × total. `probs` need not be
 * normalised (the verifier passes residuals as they are). A zero-weight token is never returned, not even when
 * rounding pushes `u` × total past the running sum: the last positive token takes that sliver.
 */
export function sampleFrom(probs: Float32Array, u: number): TokenId {
  if (!(u >= 0 && u < 1)) throw new RangeError(`u must be in [0, 1); got ${u}`);
  let total = 0;
  for (let i = 0; i < probs.length; i += 1) {
    const weight = probs[i] as number;
    if (!(weight >= 0)) throw new RangeError(`probabilities must be non-negative; got ${weight} for token ${i}`);
    total += weight;
  }
  if (!(total > 0 && Number.isFinite(total)))
    throw new RangeError(`probabilities must have a positive finite sum; got ${total}`);

  const target = u * total;
  let cumulative = 0;
  let lastPositive = -1;
  for (let i = 0; i < probs.length; i += 1) {
    const weight = probs[i] as number;
    if (weight > 0) {
      cumulative += weight;
      lastPositive = i;
      if (cumulative > target) return i as TokenId;
    }
  }
  return lastPositive as TokenId;
}

/**
 * The distribution the native sampler draws from under a grammar: it first samples as if unconstrained and keeps
 * the token when the grammar allows it; otherwise it masks the logits and samples again with a fresh draw. So
 * P(t) = q(t)·[t allowed] + (1 − Σ allowed q) · q_masked(t), where q is `toDistribution` of the logits and q_masked
 * that of the logits with rejected tokens at −∞. Without top-k, top-p or min-p this equals q_masked; with them it
 * is what the native sampler does, which is what speculation must reproduce. Greedy gives the masked argmax.
 */
export function toConstrainedDistribution(
  logits: Float32Array,
  config: TargetSamplingConfig,
  history: readonly TokenId[],
  allowed: Uint8Array,
): Float32Array {
  if (allowed.length !== logits.length)
    throw new RangeError(`grammar mask covers ${allowed.length} tokens, logits ${logits.length}`);
  const masked = maskLogits(logits, allowed);
  const constrained = toDistribution(masked, config, history);
  if (!(config.temperature > 0)) return constrained;
  const free = toDistribution(logits, config, history);
  let rejectedMass = 0;
  for (let token = 0; token < free.length; token++) if (allowed[token] !== 1) rejectedMass += free[token] as number;
  const probs = new Float32Array(logits.length);
  for (let token = 0; token < probs.length; token++) {
    const kept = allowed[token] === 1 ? (free[token] as number) : 0;
    probs[token] = kept + rejectedMass * (constrained[token] as number);
  }
  return probs;
}

/** The logits with every token the grammar rejects at −∞. */
export function maskLogits(logits: Float32Array, allowed: Uint8Array): Float32Array {
  const masked = logits.slice();
  for (let token = 0; token < masked.length; token++) if (allowed[token] !== 1) masked[token] = -Infinity;
  return masked;
}

/** Logits with the request's biases added, rounded to float32 as the native sampler adds them. */
export function applyBias(logits: Float32Array, config: TargetSamplingConfig): Float32Array {
  const bias = config.logitBias;
  if (bias == null || bias.size === 0) return logits;
  const biased = logits.slice();
  for (const [token, value] of bias) {
    if (token >= 0 && token < biased.length) biased[token] = (biased[token] as number) + Math.fround(value);
  }
  return biased;
}

/**
 * Logits after OpenAI presence/frequency penalties: logit −= presence × [count > 0] + frequency × count. Returns
 * `logits` itself when nothing changes. The arithmetic is rounded to float32 step by step, as the native sampler
 * does it, so penalised ties break the same way.
 */
function applyPenalties(logits: Float32Array, config: TargetSamplingConfig, history: readonly TokenId[]): Float32Array {
  if ((config.presencePenalty === 0 && config.frequencyPenalty === 0) || history.length === 0) return logits;
  const counts = new Map<number, number>();
  for (const token of history) {
    if (!Number.isInteger(token) || token < 0 || token >= logits.length) {
      throw new RangeError(`history token ${token} is outside the vocabulary of ${logits.length}`);
    }
    counts.set(token, (counts.get(token) ?? 0) + 1);
  }
  const presence = Math.fround(config.presencePenalty);
  const frequency = Math.fround(config.frequencyPenalty);
  const penalized = logits.slice();
  for (const [token, count] of counts) {
    const penalty = Math.fround(Math.fround(count * frequency) + presence);
    penalized[token] = (penalized[token] as number) - penalty;
  }
  return penalized;
}

/** Throws unless every logit is finite or −∞ and at least one is finite; anything else has no distribution. */
function checkLogits(logits: Float32Array): void {
  if (logits.length === 0) throw new RangeError("logits must cover a non-empty vocabulary");
  let hasFinite = false;
  for (let i = 0; i < logits.length; i += 1) {
    const logit = logits[i] as number;
    if (Number.isNaN(logit) || logit === Infinity) throw new RangeError(`logit of token ${i} is ${logit}`);
    if (logit !== -Infinity) hasFinite = true;
  }
  if (!hasFinite) throw new RangeError("every logit is -Infinity");
}

function maxLogit(logits: Float32Array, ids: Int32Array | null, isSorted: boolean): number {
  if (ids !== null && isSorted) return logits[ids[0] as number] as number;
  let max = -Infinity;
  const n = ids === null ? logits.length : ids.length;
  for (let i = 0; i < n; i += 1) {
    const logit = logits[ids === null ? i : (ids[i] as number)] as number;
    if (logit > max) max = logit;
  }
  return max;
}

/** Σ exp((logit − max) / temperature) over the candidates. */
function sumExp(logits: Float32Array, ids: Int32Array | null, max: number, temperature: number): number {
  let sum = 0;
  const n = ids === null ? logits.length : ids.length;
  for (let i = 0; i < n; i += 1) {
    sum += Math.exp(((logits[ids === null ? i : (ids[i] as number)] as number) - max) / temperature);
  }
  return sum;
}

/**
 * Top-p over the candidates, best first. Unsorted candidates are first ranked in a window of the best 256, which
 * is where top-p usually stops; when it does not, a logit histogram finds the bucket where the cumulative mass
 * crosses p, and only the tokens down to that bucket are sorted.
 */
function keepTopP(logits: Float32Array, ids: Int32Array | null, isSorted: boolean, topP: number): Int32Array {
  const max = maxLogit(logits, ids, isSorted);
  const total = sumExp(logits, ids, max, 1);
  if (isSorted && ids !== null) return topPPrefix(logits, ids, max, total, topP) ?? ids;

  const window = selectTopTokens(logits, ids, TOP_P_FIRST_WINDOW);
  const fromWindow = topPPrefix(logits, window, max, total, topP);
  if (fromWindow !== null) return fromWindow;
  const numCandidates = ids === null ? logits.length : ids.length;
  if (window.length < numCandidates) {
    const ranked = sortTokens(logits, tokensThroughMass(logits, ids, max, total, topP));
    const fromHistogram = topPPrefix(logits, ranked, max, total, topP);
    if (fromHistogram !== null) return fromHistogram;
  }
  // Rounding left the histogram's tokens (or all of them) just short of p: rank everything; if even the full sum
  // stays short, everything is kept, as in llama.cpp.
  const all = sortTokens(logits, ids);
  return topPPrefix(logits, all, max, total, topP) ?? all;
}

/** The shortest prefix of best-first `ranked` whose probability reaches `topP`, or null if none does. */
function topPPrefix(
  logits: Float32Array,
  ranked: Int32Array,
  max: number,
  total: number,
  topP: number,
): Int32Array | null {
  let cumulative = 0;
  for (let i = 0; i < ranked.length; i += 1) {
    cumulative += Math.exp((logits[ranked[i] as number] as number) - max) / total;
    if (cumulative >= topP) return ranked.subarray(0, i + 1);
  }
  return null;
}

/**
 * The candidates (unsorted) down to the histogram bucket where the mass taken best-first reaches `topP`: a superset
 * of the top-p prefix at the cost of two O(V) passes. Buckets split [lowest finite logit, max] evenly, bucket 0
 * holding the highest logits; −∞ logits carry no mass and land in the last bucket.
 */
function tokensThroughMass(
  logits: Float32Array,
  ids: Int32Array | null,
  max: number,
  total: number,
  topP: number,
): Int32Array {
  const n = ids === null ? logits.length : ids.length;
  let min = max;
  for (let i = 0; i < n; i += 1) {
    const logit = logits[ids === null ? i : (ids[i] as number)] as number;
    if (logit < min && logit !== -Infinity) min = logit;
  }
  const scale = max > min ? TOP_P_BUCKETS / (max - min) : 0;
  const bucketOf = (logit: number): number =>
    logit === -Infinity ? TOP_P_BUCKETS - 1 : Math.min(TOP_P_BUCKETS - 1, Math.floor((max - logit) * scale));
  const mass = new Float64Array(TOP_P_BUCKETS);
  for (let i = 0; i < n; i += 1) {
    const logit = logits[ids === null ? i : (ids[i] as number)] as number;
    const bucket = bucketOf(logit);
    mass[bucket] = (mass[bucket] as number) + Math.exp(logit - max) / total;
  }
  let lastBucket = 0;
  let cumulative = 0;
  for (; lastBucket < TOP_P_BUCKETS - 1; lastBucket += 1) {
    cumulative += mass[lastBucket] as number;
    if (cumulative >= topP) break;
  }
  const kept: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const token = ids === null ? i : (ids[i] as number);
    if (bucketOf(logits[token] as number) <= lastBucket) kept.push(token);
  }
  return Int32Array.from(kept);
}

/**
 * Min-p over the candidates, keeping their order. The threshold is formed in float32 like the native
 * `max_logit + logf(p)`, so a token exactly at the boundary is judged the same way.
 */
function keepMinP(logits: Float32Array, ids: Int32Array | null, isSorted: boolean, minP: number): Int32Array {
  const max = maxLogit(logits, ids, isSorted);
  const threshold = Math.fround(max + Math.fround(Math.log(Math.fround(minP))));
  const candidates = ids ?? allTokenIds(logits.length);
  const kept = candidates.filter((token) => (logits[token] as number) >= threshold);
  if (kept.length > 0) return kept;
  // min_p > 1 can reject even the best token; min_keep = 1 keeps it.
  return selectTopTokens(logits, candidates, 1);
}

/** Writes softmax(logit / temperature) of the candidates into `probs`, which is zero elsewhere. */
function writeSoftmax(logits: Float32Array, ids: Int32Array | null, temperature: number, probs: Float32Array): void {
  const max = maxLogit(logits, ids, false);
  const n = ids === null ? logits.length : ids.length;
  let sum = 0;
  for (let i = 0; i < n; i += 1) {
    const token = ids === null ? i : (ids[i] as number);
    const weight = Math.exp(((logits[token] as number) - max) / temperature);
    probs[token] = weight;
    sum += weight;
  }
  for (let i = 0; i < n; i += 1) {
    const token = ids === null ? i : (ids[i] as number);
    probs[token] = (probs[token] as number) / sum;
  }
}
