/**
 * All KV blocks of one pool: who holds each (`refCount`), which are free (the LRU `FreeBlockQueue`) and which hold
 * reusable contents (the prefix map from `BlockHash` to block).
 *
 * Eviction is lazy. A freed block keeps its hash and stays findable until `takeNew` pops it for someone else; only
 * then is its hash dropped and `onEvict` told, so the engine can let go of the cells behind it.
 */
import { type BlockHash, type BlockId, KvBlock } from "./block.ts";
import { FreeBlockQueue } from "./free-block-queue.ts";

/**
 * Told when the pool drops a free block's cached contents: `block` is still free (refCount 0), at the front of the
 * free queue and already uncached. The hook may call `uncache`, `lookup` and the read-only members (for example to
 * drop the cached blocks that chain from `hash`); any other pool mutation from inside it throws.
 */
export type EvictHook = (block: KvBlock, hash: BlockHash) => void;

export interface BlockPoolOptions {
  readonly numBlocks: number;
  readonly onEvict?: EvictHook;
}

export class BlockPool {
  readonly numBlocks: number;
  private readonly blocks: readonly KvBlock[];
  private readonly freeQueue: FreeBlockQueue;
  private readonly cached = new Map<BlockHash, KvBlock>();
  private readonly onEvict: EvictHook | null;
  /** Free blocks that have a hash; kept by every mutation so `numCachedFree` is O(1). */
  private numCachedFreeBlocks = 0;
  private isInHook = false;

  constructor(options: BlockPoolOptions) {
    if (!Number.isInteger(options.numBlocks) || options.numBlocks < 1) {
      throw new RangeError(`numBlocks must be a positive integer; got ${options.numBlocks}`);
    }
    this.numBlocks = options.numBlocks;
    this.blocks = Array.from({ length: options.numBlocks }, (_, id) => new KvBlock(id as BlockId));
    this.freeQueue = new FreeBlockQueue(this.blocks);
    this.onEvict = options.onEvict ?? null;
  }

  /** Free blocks, with or without cached contents. */
  get numFree(): number {
    return this.freeQueue.length;
  }

  /** Free blocks that still hold reusable contents. */
  get numCachedFree(): number {
    return this.numCachedFreeBlocks;
  }

  /** Blocks in the prefix map, free or in use. */
  get numCached(): number {
    return this.cached.size;
  }

  getBlock(id: BlockId): KvBlock {
    const block = this.blocks[id];
    if (block === undefined) throw new RangeError(`no block ${id} in a pool of ${this.numBlocks}`);
    return block;
  }

  /** Free-queue ids front (evicted next) to back, for tests and debugging. */
  freeBlockIds(): BlockId[] {
    return this.freeQueue.toIds();
  }

  /**
   * Takes `numBlocks` blocks from the front of the free queue, each with refCount 1. A taken block that still has
   * cached contents is evicted first. Callers check `numFree`; asking for more is a bug and throws before any change.
   */
  takeNew(numBlocks: number): KvBlock[] {
    this.assertNotInHook("takeNew");
    if (!Number.isInteger(numBlocks) || numBlocks < 0) {
      throw new RangeError(`takeNew needs a count >= 0; got ${numBlocks}`);
    }
    if (numBlocks > this.freeQueue.length) {
      throw new RangeError(`takeNew(${numBlocks}) with only ${this.freeQueue.length} free blocks`);
    }
    const taken: KvBlock[] = [];
    try {
      while (taken.length < numBlocks) {
        const block = this.freeQueue.peekFront();
        if (block === null) throw new Error("the free-block queue emptied while taking blocks");
        if (block.hash !== null) {
          this.evict(block);
          // Look at the front again rather than assume it is unchanged: the hook ran in between.
          continue;
        }
        this.freeQueue.popFront();
        block.refCount = 1;
        taken.push(block);
      }
    } catch (error) {
      // A throwing hook must not leak the blocks taken so far.
      this.release(taken);
      throw error;
    }
    return taken;
  }

  /** One more holder for each block; a free one (a prefix hit on cached contents) leaves the free queue. */
  touch(blocks: readonly KvBlock[]): void {
    this.assertNotInHook("touch");
    for (const block of blocks) this.assertOwned(block);
    for (const block of blocks) {
      if (block.refCount === 0) {
        this.freeQueue.remove(block);
        if (block.hash !== null) this.numCachedFreeBlocks -= 1;
      }
      block.refCount += 1;
    }
  }

  /**
   * One holder fewer for each block. Blocks left with none go to the back of the free queue in the given order, so
   * pass a request's blocks last first: the tail of a chain is then evicted before the head other prompts share.
   */
  release(blocksInEvictionOrder: readonly KvBlock[]): void {
    this.assertNotInHook("release");
    const numReleases = new Map<KvBlock, number>();
    for (const block of blocksInEvictionOrder) {
      this.assertOwned(block);
      const count = (numReleases.get(block) ?? 0) + 1;
      if (count > block.refCount) throw new Error(`block ${block.id} released more often than it is held`);
      numReleases.set(block, count);
    }
    for (const block of blocksInEvictionOrder) {
      block.refCount -= 1;
      if (block.refCount === 0) {
        this.freeQueue.pushBack(block);
        if (block.hash !== null) this.numCachedFreeBlocks += 1;
      }
    }
  }

  lookup(hash: BlockHash): KvBlock | null {
    return this.cached.get(hash) ?? null;
  }

  /**
   * Makes `block` findable under `hash`. Returns false and leaves `block` uncached when another block already has
   * that hash (two requests computed the same block at once): one copy is enough, the other stays private.
   */
  cache(block: KvBlock, hash: BlockHash): boolean {
    this.assertNotInHook("cache");
    this.assertOwned(block);
    if (block.hash === hash) return true;
    if (block.hash !== null) throw new Error(`block ${block.id} is already cached under another hash`);
    if (this.cached.has(hash)) return false;
    this.cached.set(hash, block);
    block.hash = hash;
    if (block.refCount === 0) this.numCachedFreeBlocks += 1;
    return true;
  }

  /**
   * Forgets `block`'s contents; returns whether it had any. A free block stays where it is in the free queue.
   * No hook runs: whoever uncaches a block is responsible for the cells behind it.
   */
  uncache(block: KvBlock): boolean {
    this.assertOwned(block);
    const hash = block.hash;
    if (hash === null) return false;
    this.cached.delete(hash);
    block.hash = null;
    if (block.refCount === 0) this.numCachedFreeBlocks -= 1;
    return true;
  }

  /**
   * Evicts every cached block, each with `onEvict`, and returns true; or returns false and changes nothing when a
   * cached block is in use (its request still relies on it).
   */
  resetCache(): boolean {
    this.assertNotInHook("resetCache");
    const cachedBlocks = [...this.cached.values()];
    if (cachedBlocks.some((block) => block.refCount > 0)) return false;
    // The hook may have uncached a later block of the snapshot already.
    for (const block of cachedBlocks) if (block.hash !== null) this.evict(block);
    return true;
  }

  /** Throws a descriptive Error on any inconsistency between blocks, the free queue, the prefix map and counters. */
  checkInvariants(): void {
    this.freeQueue.checkInvariants();
    const inQueue = new Set<KvBlock>();
    for (const block of this.freeQueue) {
      if (inQueue.has(block)) throw new Error(`block ${block.id} is in the free queue twice`);
      if (this.blocks[block.id] !== block) throw new Error(`free queue holds block ${block.id} of another pool`);
      inQueue.add(block);
    }
    let numCachedFree = 0;
    this.blocks.forEach((block, index) => {
      if (block.id !== index) throw new Error(`block at index ${index} has id ${block.id}`);
      if (!Number.isInteger(block.refCount) || block.refCount < 0) {
        throw new Error(`block ${block.id} has refCount ${block.refCount}`);
      }
      if ((block.refCount === 0) !== inQueue.has(block)) {
        const where = inQueue.has(block) ? "is" : "is not";
        throw new Error(`block ${block.id} has refCount ${block.refCount} but ${where} free`);
      }
      if (!inQueue.has(block) && (block.prevFree !== null || block.nextFree !== null)) {
        throw new Error(`block ${block.id} is off the free queue but still linked`);
      }
      if (block.hash !== null && this.cached.get(block.hash) !== block) {
        throw new Error(`block ${block.id} has hash ${block.hash} but the prefix map does not point to it`);
      }
      if (block.hash !== null && block.refCount === 0) numCachedFree += 1;
    });
    for (const [hash, block] of this.cached) {
      if (block.hash !== hash) throw new Error(`prefix map sends ${hash} to block ${block.id} with hash ${block.hash}`);
      if (this.blocks[block.id] !== block) throw new Error(`prefix map holds block ${block.id} of another pool`);
    }
    if (numCachedFree !== this.numCachedFreeBlocks) {
      throw new Error(`numCachedFree is ${this.numCachedFreeBlocks} but ${numCachedFree} free blocks have a hash`);
    }
  }

  private evict(block: KvBlock): void {
    const hash = block.hash;
    if (hash === null) return;
    this.uncache(block);
    if (this.onEvict === null) return;
    this.isInHook = true;
    try {
      this.onEvict(block, hash);
    } finally {
      this.isInHook = false;
    }
  }

  private assertNotInHook(operation: string): void {
    if (this.isInHook) throw new Error(`${operation} called from inside onEvict; the hook may only uncache blocks`);
  }

  private assertOwned(block: KvBlock): void {
    if (this.blocks[block.id] !== block) throw new Error(`block ${block.id} does not belong to this pool`);
  }
}
