import type { Speculator } from "../spec/speculator.ts";

export interface SchedulerOptions {
  /** Most requests running at once; never more than the engine's sequences. */
  readonly maxNumSequences: number;
  /** Most tokens in one step. */
  readonly maxNumBatchedTokens: number;
  /**
   * Most prompt tokens in a step that also carries decoding requests, so a long prompt's chunks do not stretch
   * the decoders' time between tokens. Defaults to `maxNumBatchedTokens` (no separate limit).
   */
  readonly maxNumPrefillTokens?: number;
  /** Most requests waiting; `add` refuses beyond it. */
  readonly maxNumWaiting: number;
  /** A request waiting longer fails with `QueueTimeoutError`; 0 or absent waits without limit. */
  readonly queueTimeoutMs?: number;
  /** Tokens per KV block. Defaults to 16. */
  readonly blockSize?: number;
  /** Reuse cached prompt prefixes; with the shared pool, or slabs that copy cells. Defaults to true. */
  readonly enablePrefixCaching?: boolean;
  /**
   * Most tokens of finished requests' cached prefixes kept in host memory, out of the pool. Defaults to twice the
   * pool's cells: a saved copy keeps its size when eviction cuts its chain, so the pool's worth of cached blocks
   * needs some slack; host memory then holds at most twice the pool's KV bytes.
   */
  readonly maxSavedPrefixTokens?: number;
  /**
   * Speculative decoding: requests without logprobs get draft tokens and are sampled from raw logits by the
   * speculator. Needs an engine that returns logits. Defaults to none.
   */
  readonly speculator?: Speculator | null;
  /** Told about every failed draft-model step (counted in `SpecStats.numDraftFailures`); it costs only drafts. */
  readonly onDraftError?: (error: Error) => void;
  /** Defaults to `performance.now`. */
  readonly now?: () => number;
}
