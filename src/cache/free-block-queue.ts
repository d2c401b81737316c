/**
 * The free blocks in eviction order: an intrusive doubly linked list through `KvBlock.prevFree/nextFree` with a
 * head and a tail sentinel, so a cached free block that gets a prefix hit leaves from the middle in O(1) and no
 * operation special-cases an empty list or an end node.
 *
 * Blocks are taken from the front and returned at the back, so the block freed longest ago is reused (and its
 * cached contents evicted) first: LRU.
 */
import { type BlockId, KvBlock } from "./block.ts";

export class FreeBlockQueue {
  private readonly head = new KvBlock(-1 as BlockId);
  private readonly tail = new KvBlock(-2 as BlockId);
  private count = 0;

  /** Starts holding `blocks` in the given order (the pool passes them in id order). */
  constructor(blocks: readonly KvBlock[] = []) {
    this.head.nextFree = this.tail;
    this.tail.prevFree = this.head;
    this.pushBackAll(blocks);
  }

  get length(): number {
    return this.count;
  }

  /** The block `popFront` would return, or null when empty. */
  peekFront(): KvBlock | null {
    const first = this.head.nextFree;
    return first === this.tail ? null : first;
  }

  popFront(): KvBlock {
    const first = this.peekFront();
    if (first === null) throw new RangeError("popFront on an empty free-block queue");
    this.unlink(first);
    return first;
  }

  /** Takes `block` out from wherever it is. */
  remove(block: KvBlock): void {
    if (!this.has(block)) throw new Error(`block ${block.id} is not in the free-block queue`);
    this.unlink(block);
  }

  pushBack(block: KvBlock): void {
    if (block.prevFree !== null || block.nextFree !== null || block === this.head || block === this.tail) {
      throw new Error(`block ${block.id} is already in a free-block queue`);
    }
    const last = this.tail.prevFree as KvBlock;
    last.nextFree = block;
    block.prevFree = last;
    block.nextFree = this.tail;
    this.tail.prevFree = block;
    this.count += 1;
  }

  /** Appends in the given order; the first of `blocks` will be evicted first among them. */
  pushBackAll(blocks: readonly KvBlock[]): void {
    for (const block of blocks) this.pushBack(block);
  }

  /** Whether `block` is linked into a queue; with one queue per pool, into this one. */
  has(block: KvBlock): boolean {
    return block.prevFree !== null && block !== this.head && block !== this.tail;
  }

  *[Symbol.iterator](): IterableIterator<KvBlock> {
    for (let node = this.head.nextFree; node !== null && node !== this.tail; node = node.nextFree) yield node;
  }

  /** Ids front to back, for tests and debugging. */
  toIds(): BlockId[] {
    return Array.from(this, (block) => block.id);
  }

  /** Throws unless the links agree both ways, the sentinels bound the list and `length` counts it. */
  checkInvariants(): void {
    if (this.head.prevFree !== null || this.tail.nextFree !== null) {
      throw new Error("free-block queue: a sentinel is linked outward");
    }
    let numSeen = 0;
    let node = this.head;
    while (node !== this.tail) {
      const next = node.nextFree;
      if (next === null) throw new Error(`free-block queue: the list ends at block ${node.id} before the tail`);
      if (next.prevFree !== node) {
        throw new Error(`free-block queue: block ${next.id} does not link back to block ${node.id}`);
      }
      if (next === this.head) throw new Error("free-block queue: the head sentinel appears inside the list");
      if (next !== this.tail) numSeen += 1;
      if (numSeen > this.count) throw new Error(`free-block queue: more than length=${this.count} blocks (a cycle?)`);
      node = next;
    }
    if (numSeen !== this.count) throw new Error(`free-block queue: length=${this.count} but ${numSeen} linked blocks`);
  }

  private unlink(block: KvBlock): void {
    const prev = block.prevFree as KvBlock;
    const next = block.nextFree as KvBlock;
    prev.nextFree = next;
    next.prevFree = prev;
    block.prevFree = null;
    block.nextFree = null;
    this.count -= 1;
  }
}
