import type { PooledRoute } from "./pagoda-metrics.ts";

/** Live values the model's metrics read at scrape time; the runtime implements it over the scheduler and engine. */
export interface MetricsSource {
  readonly modelName: string;
  /** The models served beside the generator, each for the one route it answers. */
  readonly pooledModels: readonly PooledModelSource[];
  /** Inputs waiting for the generator's own pooling context. */
  numWaitingPooledInputs(): number;
  readonly contextSize: number;
  readonly numSequences: number;
  /** KV cells the engine reserved. */
  readonly numKvCells: number;
  /** Tokens per KV block and blocks in the pool, for vllm:cache_config_info. */
  readonly kvBlockSize: number;
  readonly numKvBlocks: number;
  readonly isPrefixCaching: boolean;
  numRunning(): number;
  numWaiting(): number;
  numKvTokens(): number;
  /** Used KV blocks over all blocks, 0..1. */
  kvUsage(): number;
  /** KV blocks held by requests, and free blocks still holding a cached prefix. */
  kvBlocks(): { readonly used: number; readonly cached: number };
}

/** A model served beside the generator, as its metrics read it. */
export interface PooledModelSource {
  readonly modelName: string;
  readonly route: PooledRoute;
  /** Inputs waiting for a decode of its pooling context. */
  numWaitingInputs(): number;
}
