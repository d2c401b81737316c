/**
 * Sampling after a decode: each item that asked for a token draws it with its sequence's native sampler, on
 * llama.cpp's thread pool, with logprobs when its request wants them; or takes the token the decode's own task
 * picked (plain greedy items, see `isPlainGreedy`).
 */
import { combinedFailure } from "./combined-failure.ts";
import type { SequenceId, StepItem, StepOutput, TokenId } from "./engine.ts";
import type { NativeContext } from "./llama-internals.ts";
import type { SequenceSlot } from "./llama-sequences.ts";
import { toSampledLogprobs } from "./logprobs.ts";
import { isConfigPerToken, nativeSamplerConfig } from "./native-sampler-config.ts";

export interface SampleStepOptions {
  readonly native: NativeContext;
  readonly slotOf: (sequenceId: SequenceId) => SequenceSlot;
  /** Most tokens of one sequence: every token it sampled counts for its penalties. */
  readonly penaltyWindow: number;
  /** Told of each sampled token once it is in the slot's history (lazy grammars start from the output text). */
  readonly onSampled: (slot: SequenceSlot, token: TokenId) => void;
  /** Per item, the token the decode picked already (plain greedy), or null to sample it here. */
  readonly picked?: readonly (TokenId | null)[];
}

/**
 * One output per item, in order; `logitIndexes[i]` is the batch row of item i's last token, or null when it samples
 * nothing.
 *
 * llama.cpp restores the batch's output order lazily, on the first read of the logits after a decode, and that
 * reorder is not thread-safe: samplers running at once on the thread pool would swap rows twice and hand one
 * sequence another's token (seen whenever a step's outputs left the split out of order). One sampler goes first
 * and alone, the rest then only read.
 */
export async function sampleStep(
  items: readonly StepItem[],
  logitIndexes: readonly (number | null)[],
  options: SampleStepOptions,
): Promise<StepOutput[]> {
  const first = logitIndexes.findIndex((index) => index !== null);
  if (first < 0) return items.map((item) => noToken(item.sequenceId));
  const pickedAt = (index: number): TokenId | null => options.picked?.[index] ?? null;
  const firstOutput = await sampleItem(items[first]!, logitIndexes[first] ?? null, pickedAt(first), options);
  // Every sampler finishes before the step ends, failed or not: a released sequence disposes its native sampler.
  const settled = await Promise.allSettled(
    items.map((item, index) =>
      index === first ? firstOutput : sampleItem(item, logitIndexes[index] ?? null, pickedAt(index), options),
    ),
  );
  const outputs: StepOutput[] = [];
  const failures: unknown[] = [];
  for (const result of settled) {
    if (result.status === "fulfilled") outputs.push(result.value);
    else failures.push(result.reason);
  }
  if (failures.length > 0) throw combinedFailure(failures);
  return outputs;
}

async function sampleItem(
  item: StepItem,
  logitIndex: number | null,
  picked: TokenId | null,
  options: SampleStepOptions,
): Promise<StepOutput> {
  if (!item.shouldSample || logitIndex === null) return noToken(item.sequenceId);
  const slot = options.slotOf(item.sequenceId);
  const sampling = slot.sampling;
  const sampler = slot.sampler;
  if (sampling === null || sampler === null) throw new Error(`sequence ${item.sequenceId} has no sampler`);
  if (picked === null && isConfigPerToken(sampling))
    sampler.applyConfig(nativeSamplerConfig(sampling, slot.history, options.penaltyWindow, slot.grammarState));
  const wantsLogprobs = sampling.topLogprobs !== null;
  const [sampled, probabilities] =
    picked === null ? await options.native.sampleToken(logitIndex, sampler, wantsLogprobs) : [picked, undefined];
  const token = sampled as TokenId;
  if (token < 0) return noToken(item.sequenceId);
  slot.history.push(token);
  options.onSampled(slot, token);
  const logprobs = wantsLogprobs ? toSampledLogprobs(token, probabilities ?? [], sampling.topLogprobs ?? 0) : null;
  return { sequenceId: item.sequenceId, token, logprobs };
}

function noToken(sequenceId: SequenceId): StepOutput {
  return { sequenceId, token: null, logprobs: null };
}
