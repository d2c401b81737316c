/**
 * Turns the cumulative counts a step reports (the KV pool's and speculation's) into the increments Prometheus
 * counters take, once for every metric family that counts them.
 */
import type { SamplingCounters } from "../engine/engine.ts";
import type { StepStats } from "../scheduler/engine-loop.ts";
import type { KvCacheState } from "../scheduler/scheduler.ts";
import type { SpecStats } from "../spec/speculator.ts";

/** What one step added; spec fields stay 0 and `acceptedPerPosition` empty without speculation. */
export interface StepIncrements {
  readonly numPrefixQueriedTokens: number;
  readonly numPrefixHitTokens: number;
  readonly numPreemptions: number;
  readonly numDrafts: number;
  readonly numDraftTokens: number;
  readonly numAcceptedTokens: number;
  /** Draft-model steps that failed (their drafts were dropped, the requests went on without them). */
  readonly numDraftFailures: number;
  /** Accepted tokens added per draft position (0-based). */
  readonly acceptedPerPosition: readonly number[];
  /** The step's sampling time. */
  readonly sampleMs: number;
  readonly numGrammarFallbacks: number;
  readonly numTriggerFailures: number;
}

type KvCounts = Pick<KvCacheState, "prefixQueriedTokens" | "prefixHitTokens" | "numPreemptions">;

export class StepDeltas {
  private lastKv: KvCounts = { prefixQueriedTokens: 0, prefixHitTokens: 0, numPreemptions: 0 };
  private lastSampling: SamplingCounters = {
    sampleMs: 0,
    numGrammarFallbacks: 0,
    numTriggerFailures: 0,
    numPickedInDecode: 0,
  };
  private lastSpec: SpecStats = {
    numDrafts: 0,
    numDraftTokens: 0,
    numAcceptedTokens: 0,
    acceptedPerPosition: [],
    numDraftFailures: 0,
  };

  /** The increments since the previous step; remembers this step's totals. */
  next(stats: StepStats): StepIncrements {
    const kv = stats.kvCache;
    const lastKv = this.lastKv;
    this.lastKv = kv;
    const spec = stats.spec;
    const last = this.lastSpec;
    // A step without speculation keeps the last totals, so a later step with it counts from them.
    if (spec !== null) this.lastSpec = spec;
    const sampling = stats.sampling;
    const lastSampling = this.lastSampling;
    this.lastSampling = sampling;
    return {
      sampleMs: sampling.sampleMs - lastSampling.sampleMs,
      // The native count is the process's: another engine (a draft model's) may add to it, never take away.
      numGrammarFallbacks: Math.max(0, sampling.numGrammarFallbacks - lastSampling.numGrammarFallbacks),
      numTriggerFailures: sampling.numTriggerFailures - lastSampling.numTriggerFailures,
      numPrefixQueriedTokens: kv.prefixQueriedTokens - lastKv.prefixQueriedTokens,
      numPrefixHitTokens: kv.prefixHitTokens - lastKv.prefixHitTokens,
      numPreemptions: kv.numPreemptions - lastKv.numPreemptions,
      numDrafts: spec === null ? 0 : spec.numDrafts - last.numDrafts,
      numDraftTokens: spec === null ? 0 : spec.numDraftTokens - last.numDraftTokens,
      numAcceptedTokens: spec === null ? 0 : spec.numAcceptedTokens - last.numAcceptedTokens,
      numDraftFailures: spec === null ? 0 : spec.numDraftFailures - last.numDraftFailures,
      acceptedPerPosition:
        spec === null
          ? []
          : spec.acceptedPerPosition.map((count, position) => count - (last.acceptedPerPosition[position] ?? 0)),
    };
  }
}
