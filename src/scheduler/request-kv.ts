/**
 * KV memory for the scheduler's requests: blocks from the block manager, and the engine cells behind them (forks
 * of cached prefixes, copies saved to host memory). Blocks never leave this class; the scheduler gets counts,
 * booleans and plain state records.
 */
import type { KvBlock } from "../cache/block.ts";
import { CellHolders } from "../cache/cell-holders.ts";
import { type CachedPrefix, KvCacheManager } from "../cache/kv-cache-manager.ts";
import type { SequenceEngine, SequenceId, TokenId } from "../engine/engine.ts";
import type { Request } from "./request.ts";

/** The KV pool's state for metrics. */
export interface KvCacheState {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly numUsedBlocks: number;
  /** Free blocks that still hold a cached prefix. */
  readonly numCachedBlocks: number;
  /**
   * 0..1, used blocks over all blocks. With slabs, a block copied into several sequences counts once per sequence,
   * as its cells do.
   */
  readonly usage: number;
  readonly prefixQueriedTokens: number;
  readonly prefixHitTokens: number;
  readonly numPreemptions: number;
  /** Cached prefixes copied out of the pool to host memory, and the bytes they take. */
  readonly numSavedPrefixes: number;
  readonly savedPrefixBytes: number;
}

export interface RequestKvOptions {
  readonly blockSize: number;
  /** Reuse cached prompt prefixes; granted with the engine's shared pool, or slabs that copy cells. */
  readonly enablePrefixCaching: boolean;
  /** Most tokens of finished requests' cached prefixes kept in host memory. */
  readonly maxSavedPrefixTokens: number;
}

/** Where an admitted request starts: the tokens its cached prefix gave it, and those to compute in this step. */
export interface Admission {
  readonly numPrefixTokens: number;
  readonly numNewTokens: number;
}

export class RequestKv {
  private readonly kv: KvCacheManager;
  private readonly holders: CellHolders<KvBlock>;
  /** Slabs: each sequence holds its own copy of the blocks it shares. */
  private readonly copiesCells: boolean;

  constructor(engine: SequenceEngine, options: RequestKvOptions) {
    const { blockSize } = options;
    this.copiesCells = !engine.info.isKvShared;
    this.holders = new CellHolders<KvBlock>(engine, {
      blockSize,
      numCells: engine.info.kvCacheTokens,
      maxSavedTokens: options.maxSavedPrefixTokens,
      copiesCells: this.copiesCells,
      uncache: (block) => this.kv.uncache(block),
    });
    this.kv = new KvCacheManager({
      numBlocks: Math.floor(engine.info.kvCacheTokens / blockSize),
      blockSize,
      enablePrefixCaching: (engine.info.isKvShared || engine.info.canCopyCells) && options.enablePrefixCaching,
      onEvict: (block) => this.holders.onEvict(block),
    });
    if (this.kv.numBlocks < 1)
      throw new RangeError(`a KV pool of ${engine.info.kvCacheTokens} tokens holds no block of ${blockSize}`);
  }

  /** Tokens the whole pool holds. */
  get numPoolTokens(): number {
    return this.kv.numBlocks * this.kv.blockSize;
  }

  get isPrefixCaching(): boolean {
    return this.kv.enablePrefixCaching;
  }

  get blockSize(): number {
    return this.kv.blockSize;
  }

  /** Whether a request of `numTokens` tokens fits the empty pool; if not, no amount of preemption helps. */
  canEverFit(numTokens: number): boolean {
    return this.kv.canEverFit(numTokens);
  }

  /**
   * Admits `request` onto `sequenceId`: takes its forkable cached prefix and blocks for up to `budget` more tokens,
   * and gives the sequence the prefix's cells. Null when the pool is too full; then nothing has changed.
   */
  admit(request: Request, sequenceId: SequenceId, budget: number): Admission | null {
    const prefix = this.forkablePrefix(request.allTokens);
    const numNewTokens = Math.min(request.numTokens - prefix.numTokens, budget);
    const blocks = this.kv.allocateSlots(request.id, { numNewTokens, cachedPrefix: prefix });
    if (blocks === null) return null;
    // Counted once per request, as vLLM does; a resumed request's own recomputation is not a cache query.
    if (request.numPreemptions === 0) this.kv.recordPrefixQuery(request.numTokens, prefix.numTokens);
    this.holders.fork(sequenceId, prefix.blocks);
    this.holders.onAllocated(sequenceId, blocks);
    return { numPrefixTokens: prefix.numTokens, numNewTokens };
  }

  /** Blocks for `numNewTokens` more tokens of a running request; false when the pool is too full. */
  allocate(request: Request, sequenceId: SequenceId, numNewTokens: number): boolean {
    const blocks = this.kv.allocateSlots(request.id, { numNewTokens });
    if (blocks === null) return false;
    this.holders.onAllocated(sequenceId, blocks);
    return true;
  }

  /** Records the request's computed tokens as in the KV cache; with prefix caching, full blocks become cached. */
  commit(request: Request): void {
    this.kv.commitTokens(request.id, request.allTokens, request.numComputedTokens);
  }

  /** Frees the request's blocks, and its sequence's cells (saving those of cached blocks first). */
  release(request: Request): void {
    this.kv.free(request.id);
    if (request.sequenceId !== null) this.holders.release(request.sequenceId, this.kv.enablePrefixCaching);
  }

  /** Drops every cached prefix not in use (and the saved copies of their cells); false if one is in use. */
  resetPrefixCache(): boolean {
    return this.kv.resetPrefixCache();
  }

  state(numPreemptions: number): KvCacheState {
    const stats = this.kv.stats();
    return {
      numBlocks: stats.numBlocks,
      blockSize: stats.blockSize,
      numUsedBlocks: stats.numUsedBlocks,
      numCachedBlocks: stats.numCachedFreeBlocks,
      usage: this.copiesCells ? Math.min(1, this.holders.numSequenceBlocks / stats.numBlocks) : stats.usage,
      prefixQueriedTokens: stats.queriedTokens,
      prefixHitTokens: stats.hitTokens,
      numPreemptions,
      numSavedPrefixes: this.holders.numSaved,
      savedPrefixBytes: this.holders.numSavedBytes,
    };
  }

  /** Throws on any inconsistency between the block manager, the cell holders and the requests; for tests. */
  checkInvariants(running: readonly Request[], waiting: readonly Request[]): void {
    this.kv.checkInvariants();
    this.holders.checkInvariants(this.kv.blockStates());
    for (const request of running) {
      if (!this.kv.hasRequest(request.id)) throw new Error(`running request ${request.id} holds no blocks`);
      if (request.sequenceId === null) throw new Error(`running request ${request.id} has no sequence`);
    }
    for (const request of waiting) {
      if (this.kv.hasRequest(request.id)) throw new Error(`waiting request ${request.id} still holds blocks`);
    }
  }

  /** The cached prefix of `tokens` whose cells can be forked now; the rest of a longer one is recomputed. */
  private forkablePrefix(tokens: readonly TokenId[]): CachedPrefix {
    const prefix = this.kv.findCachedPrefix(tokens);
    const numBlocks = this.holders.numForkable(prefix.blocks);
    if (numBlocks === prefix.blocks.length) return prefix;
    return {
      blocks: prefix.blocks.slice(0, numBlocks),
      hashes: prefix.hashes.slice(0, numBlocks),
      numTokens: numBlocks * this.kv.blockSize,
    };
  }
}
