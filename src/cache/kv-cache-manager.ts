/**
 * Admission control for llama.cpp's unified KV cache, in the shape of vLLM's v1 KVCacheManager. llama.cpp places
 * each token in any free cell of its `numBlocks × blockSize` cells; this manager is the source of truth for how many
 * it may need. Requests get fixed-size blocks as they grow (block i of a request covers positions
 * [i × blockSize, (i + 1) × blockSize)), and full blocks are cached by a hash chain so a prompt that starts with the
 * same tokens reuses them (the engine forks those cells).
 *
 * Accounting contract: the number of KV cells llama.cpp can be holding is at most
 * (numBlocks − free blocks without a hash) × blockSize. A block in use stands for at most blockSize cells however
 * many requests share it; a free cached block stands for the cells kept for reuse until `onEvict` (or the caller of
 * `uncache`) lets them go; a free uncached block stands for none. Every partially filled last block is private to
 * its request and never hashed, and only committed tokens are ever hashed, so a cached block's cells are final.
 *
 * Protocol per request: `findCachedPrefix` (waiting requests only), `allocateSlots` before each step (null means it
 * does not fit and nothing changed, so the scheduler can preempt and retry), `commitTokens` after the step with the
 * tokens now in the KV cache, `free` when finished, aborted or preempted.
 */
import type { RequestId, TokenId } from "../engine/ids.ts";
import { type BlockHash, type BlockId, hashBlock, type KvBlock } from "./block.ts";
import { BlockPool, type EvictHook } from "./block-pool.ts";

export interface KvCacheManagerOptions {
  /** Blocks in the pool; llama.cpp's unified KV cache must have at least `numBlocks × blockSize` cells. */
  readonly numBlocks: number;
  /** Tokens per block. */
  readonly blockSize: number;
  /** Cache full committed blocks by hash and hand them to prompts that start with the same tokens. */
  readonly enablePrefixCaching: boolean;
  /** Told when a free cached block is evicted; see `EvictHook`. */
  readonly onEvict?: EvictHook;
}

/** Leading full blocks of a prompt that are already in the KV cache. */
export interface CachedPrefix {
  readonly blocks: readonly KvBlock[];
  /** The hash each block had when found; a block that has another one since was evicted and reused. */
  readonly hashes: readonly BlockHash[];
  /** `blocks.length × blockSize`. */
  readonly numTokens: number;
}

export interface AllocateSlotsOptions {
  /** Tokens to be computed beyond the request's computed ones: a prompt chunk, a decode token, spec tokens. */
  readonly numNewTokens: number;
  /** On a request's first call only: `findCachedPrefix`'s answer, with no pool change since. */
  readonly cachedPrefix?: CachedPrefix;
}

export interface KvCacheStats {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Free blocks, cached or not. */
  readonly numFreeBlocks: number;
  readonly numCachedFreeBlocks: number;
  readonly numUsedBlocks: number;
  /** `numUsedBlocks / numBlocks`, 0 … 1. */
  readonly usage: number;
  /** Prompt tokens looked up in the prefix cache, as recorded by `recordPrefixQuery`. */
  readonly queriedTokens: number;
  /** Of `queriedTokens`, those found. */
  readonly hitTokens: number;
}

/** A block as a plain value, for tests and debugging. */
export interface BlockState {
  readonly id: BlockId;
  readonly refCount: number;
  readonly hash: BlockHash | null;
}

interface RequestState {
  /** Block i covers positions [i × blockSize, (i + 1) × blockSize). */
  readonly blocks: KvBlock[];
  /** Hashes of the leading full committed blocks, so each block is hashed once. Empty without prefix caching. */
  readonly hashes: BlockHash[];
  numComputedTokens: number;
}

const NO_PREFIX: CachedPrefix = { blocks: [], hashes: [], numTokens: 0 };

export class KvCacheManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly enablePrefixCaching: boolean;
  private readonly pool: BlockPool;
  private readonly requests = new Map<RequestId, RequestState>();
  private queriedTokens = 0;
  private hitTokens = 0;

  constructor(options: KvCacheManagerOptions) {
    if (!Number.isInteger(options.blockSize) || options.blockSize < 1) {
      throw new RangeError(`blockSize must be a positive integer; got ${options.blockSize}`);
    }
    this.pool = new BlockPool({ numBlocks: options.numBlocks, onEvict: options.onEvict });
    this.numBlocks = options.numBlocks;
    this.blockSize = options.blockSize;
    this.enablePrefixCaching = options.enablePrefixCaching;
  }

  numBlocksNeeded(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /** Whether a request of `numTokens` tokens fits in the empty pool; if not, no amount of preemption helps. */
  canEverFit(numTokens: number): boolean {
    return numTokens <= this.numBlocks * this.blockSize;
  }

  /**
   * The longest run of cached full blocks that starts `tokens`, following the hash chain. It never covers the whole
   * prompt: the last token is always computed, since its logits give the first output token. A pure lookup; it
   * records nothing (see `recordPrefixQuery`) because a request that does not fit is looked up again next step.
   */
  findCachedPrefix(tokens: readonly TokenId[]): CachedPrefix {
    if (!this.enablePrefixCaching || tokens.length <= 1) return NO_PREFIX;
    const maxBlocks = Math.floor((tokens.length - 1) / this.blockSize);
    const blocks: KvBlock[] = [];
    const hashes: BlockHash[] = [];
    for (let index = 0; index < maxBlocks; index++) {
      const parent = hashes[index - 1] ?? null;
      const hash = hashBlock(parent, tokens.slice(index * this.blockSize, (index + 1) * this.blockSize));
      const block = this.pool.lookup(hash);
      if (block === null) break;
      blocks.push(block);
      hashes.push(hash);
    }
    return blocks.length === 0 ? NO_PREFIX : { blocks, hashes, numTokens: blocks.length * this.blockSize };
  }

  /** Counts one prefix lookup in `stats()`; the scheduler calls it once per admitted request, not per attempt. */
  recordPrefixQuery(numQueriedTokens: number, numHitTokens: number): void {
    if (!Number.isInteger(numHitTokens) || numHitTokens < 0 || !Number.isInteger(numQueriedTokens)) {
      throw new RangeError(`token counts must be integers >= 0; got ${numQueriedTokens} and ${numHitTokens}`);
    }
    if (numHitTokens > numQueriedTokens) {
      throw new RangeError(`hit ${numHitTokens} of only ${numQueriedTokens} queried tokens`);
    }
    this.queriedTokens += numQueriedTokens;
    this.hitTokens += numHitTokens;
  }

  /**
   * Makes room for the request's computed tokens plus `numNewTokens`, taking `cachedPrefix`'s blocks on its first
   * call (their tokens count as computed). Returns the blocks added, or null when the free blocks do not suffice;
   * then nothing has changed. Cached free blocks count as free, and a free prefix block counts once: taking it as a
   * prefix block is what uses it up.
   */
  allocateSlots(requestId: RequestId, options: AllocateSlotsOptions): readonly KvBlock[] | null {
    const { numNewTokens } = options;
    if (!Number.isInteger(numNewTokens) || numNewTokens < 0) {
      throw new RangeError(`numNewTokens must be an integer >= 0; got ${numNewTokens}`);
    }
    const existing = this.requests.get(requestId);
    const prefix = options.cachedPrefix ?? NO_PREFIX;
    if (existing !== undefined && prefix.blocks.length > 0) {
      throw new Error(`request ${requestId} already holds blocks; a cached prefix is only for its first allocation`);
    }
    if (existing === undefined) this.assertValidPrefix(prefix);

    const numComputedTokens = existing?.numComputedTokens ?? prefix.numTokens;
    const numHeldBlocks = existing?.blocks.length ?? prefix.blocks.length;
    const numNewBlocks = Math.max(0, this.numBlocksNeeded(numComputedTokens + numNewTokens) - numHeldBlocks);
    const numFreePrefixBlocks = prefix.blocks.filter((block) => block.refCount === 0).length;
    if (numNewBlocks + numFreePrefixBlocks > this.pool.numFree) return null;

    // Touch before taking: a free prefix block must leave the free queue before takeNew could evict it.
    this.pool.touch(prefix.blocks);
    let newBlocks: KvBlock[];
    try {
      newBlocks = this.pool.takeNew(numNewBlocks);
    } catch (error) {
      // Only a throwing onEvict gets here; give the prefix back so no block leaks.
      this.pool.release([...prefix.blocks].reverse());
      throw error;
    }
    if (existing === undefined) {
      this.requests.set(requestId, {
        blocks: [...prefix.blocks, ...newBlocks],
        hashes: [...prefix.hashes],
        numComputedTokens,
      });
    } else {
      existing.blocks.push(...newBlocks);
    }
    return newBlocks;
  }

  /**
   * Records that the request's first `numComputedTokens` of `allTokens` are in the KV cache (verified: accepted spec
   * tokens only), and with prefix caching hashes and caches every block that became full.
   */
  commitTokens(requestId: RequestId, allTokens: readonly TokenId[], numComputedTokens: number): void {
    const state = this.stateOf(requestId);
    if (!Number.isInteger(numComputedTokens) || numComputedTokens < state.numComputedTokens) {
      throw new RangeError(
        `request ${requestId}: numComputedTokens ${numComputedTokens} is below ${state.numComputedTokens} committed`,
      );
    }
    if (numComputedTokens > allTokens.length) {
      throw new RangeError(`request ${requestId}: ${numComputedTokens} computed of only ${allTokens.length} tokens`);
    }
    const numCells = state.blocks.length * this.blockSize;
    if (numComputedTokens > numCells) {
      throw new RangeError(`request ${requestId}: ${numComputedTokens} computed tokens; blocks for ${numCells}`);
    }
    state.numComputedTokens = numComputedTokens;
    if (!this.enablePrefixCaching) return;
    const numFullBlocks = Math.floor(numComputedTokens / this.blockSize);
    for (let index = state.hashes.length; index < numFullBlocks; index++) {
      const parent = state.hashes[index - 1] ?? null;
      const hash = hashBlock(parent, allTokens.slice(index * this.blockSize, (index + 1) * this.blockSize));
      // The chain goes on with this hash even when another block holds these contents and this one stays private.
      state.hashes.push(hash);
      this.pool.cache(state.blocks[index] as KvBlock, hash);
    }
  }

  /**
   * Rolls a request back to its first `numComputedTokens` tokens (rejected speculative tokens) and releases the
   * blocks past them. Only uncached blocks can go: a cached block holds verified tokens, which are never rolled back.
   */
  truncate(requestId: RequestId, numComputedTokens: number): void {
    const state = this.stateOf(requestId);
    if (!Number.isInteger(numComputedTokens) || numComputedTokens < 0 || numComputedTokens > state.numComputedTokens) {
      throw new RangeError(
        `request ${requestId}: cannot roll back to ${numComputedTokens} of ${state.numComputedTokens} tokens`,
      );
    }
    const numKept = this.numBlocksNeeded(numComputedTokens);
    if (state.hashes.length > Math.floor(numComputedTokens / this.blockSize)) {
      throw new Error(`request ${requestId}: rolling back to ${numComputedTokens} tokens would drop cached blocks`);
    }
    state.numComputedTokens = numComputedTokens;
    if (state.blocks.length > numKept) this.pool.release(state.blocks.splice(numKept).reverse());
  }

  /** Releases the request's blocks, last first so a chain's tail is evicted before its head; false if unknown. */
  free(requestId: RequestId): boolean {
    const state = this.requests.get(requestId);
    if (state === undefined) return false;
    this.requests.delete(requestId);
    this.pool.release([...state.blocks].reverse());
    return true;
  }

  hasRequest(requestId: RequestId): boolean {
    return this.requests.has(requestId);
  }

  blocksOf(requestId: RequestId): readonly KvBlock[] {
    return this.stateOf(requestId).blocks;
  }

  numComputedTokens(requestId: RequestId): number {
    return this.stateOf(requestId).numComputedTokens;
  }

  /** Forgets a block's cached contents without `onEvict`; the caller owns the cells behind it. */
  uncache(block: KvBlock): boolean {
    return this.pool.uncache(block);
  }

  /** Evicts every cached block (each with `onEvict`); returns false and changes nothing while one is in use. */
  resetPrefixCache(): boolean {
    return this.pool.resetCache();
  }

  stats(): KvCacheStats {
    const numUsedBlocks = this.numBlocks - this.pool.numFree;
    return {
      numBlocks: this.numBlocks,
      blockSize: this.blockSize,
      numFreeBlocks: this.pool.numFree,
      numCachedFreeBlocks: this.pool.numCachedFree,
      numUsedBlocks,
      usage: numUsedBlocks / this.numBlocks,
      queriedTokens: this.queriedTokens,
      hitTokens: this.hitTokens,
    };
  }

  /** Every block as a plain value, in id order. */
  blockStates(): BlockState[] {
    return Array.from({ length: this.numBlocks }, (_, id) => {
      const block = this.pool.getBlock(id as BlockId);
      return { id: block.id, refCount: block.refCount, hash: block.hash };
    });
  }

  /** Free-queue ids, evicted next first. */
  freeBlockIds(): BlockId[] {
    return this.pool.freeBlockIds();
  }

  /** Pool invariants, plus: request holdings add up to every refCount and cover every computed token. */
  checkInvariants(): void {
    this.pool.checkInvariants();
    const numHolders = new Map<KvBlock, number>();
    for (const [requestId, state] of this.requests) {
      const distinct = new Set(state.blocks);
      if (distinct.size !== state.blocks.length) throw new Error(`request ${requestId} holds a block twice`);
      for (const block of state.blocks) {
        if (block.refCount < 1) throw new Error(`request ${requestId} holds block ${block.id} with refCount 0`);
        numHolders.set(block, (numHolders.get(block) ?? 0) + 1);
      }
      if (state.blocks.length < this.numBlocksNeeded(state.numComputedTokens)) {
        throw new Error(
          `request ${requestId} has ${state.numComputedTokens} computed tokens in only ${state.blocks.length} blocks`,
        );
      }
      const numHashes = this.enablePrefixCaching ? Math.floor(state.numComputedTokens / this.blockSize) : 0;
      if (state.hashes.length !== numHashes) {
        throw new Error(`request ${requestId} has ${state.hashes.length} block hashes; expected ${numHashes}`);
      }
    }
    for (const block of this.blockStates()) {
      const numHeld = numHolders.get(this.pool.getBlock(block.id)) ?? 0;
      if (numHeld !== block.refCount) {
        throw new Error(`block ${block.id} has refCount ${block.refCount} but ${numHeld} requests hold it`);
      }
    }
  }

  private stateOf(requestId: RequestId): RequestState {
    const state = this.requests.get(requestId);
    if (state === undefined) throw new RangeError(`no blocks for request ${requestId}`);
    return state;
  }

  /** A prefix from `findCachedPrefix` is stale if a block was evicted (and maybe cached anew) since: a caller bug. */
  private assertValidPrefix(prefix: CachedPrefix): void {
    if (prefix.blocks.length > 0 && !this.enablePrefixCaching) {
      throw new Error("a cached prefix was passed with prefix caching disabled");
    }
    if (prefix.numTokens !== prefix.blocks.length * this.blockSize || prefix.hashes.length !== prefix.blocks.length) {
      const { blocks, hashes, numTokens } = prefix;
      throw new RangeError(`a cached prefix of ${blocks.length} blocks, ${hashes.length} hashes, ${numTokens} tokens`);
    }
    prefix.blocks.forEach((block, index) => {
      const hash = prefix.hashes[index] as BlockHash;
      if (block.hash !== hash || this.pool.lookup(hash) !== block) {
        throw new Error(`cached prefix block ${block.id} is no longer cached; look the prefix up again`);
      }
    });
  }
}
