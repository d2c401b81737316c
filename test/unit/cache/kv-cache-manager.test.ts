import assert from "node:assert/strict";
import { test } from "node:test";
import type { BlockHash, KvBlock } from "../../../src/cache/block.ts";
import { KvCacheManager, type KvCacheManagerOptions } from "../../../src/cache/kv-cache-manager.ts";
import type { RequestId, TokenId } from "../../../src/engine/ids.ts";
import { asRequestId, asTokenIds, tokenIds } from "../../helpers/ids.ts";

const BLOCK_SIZE = 4;
const a = asRequestId("a");
const b = asRequestId("b");
const c = asRequestId("c");
const d = asRequestId("d");
const inner = asRequestId("inner");
const huge = asRequestId("huge");
const nobody = asRequestId("nobody");

function makeManager(options: Partial<KvCacheManagerOptions> = {}): KvCacheManager {
  const manager = new KvCacheManager({ numBlocks: 10, blockSize: BLOCK_SIZE, enablePrefixCaching: true, ...options });
  manager.checkInvariants();
  return manager;
}

/** Runs `mutate`, then checks every pool and request invariant. */
function checked<T>(manager: KvCacheManager, mutate: () => T): T {
  const result = mutate();
  manager.checkInvariants();
  return result;
}

function tokens(count: number, first: number): TokenId[] {
  return asTokenIds(Array.from({ length: count }, (_, index) => first + index));
}

function ids(blocks: readonly KvBlock[] | null): number[] | null {
  return blocks === null ? null : blocks.map((block) => block.id);
}

function cachedIds(manager: KvCacheManager): number[] {
  return manager.blockStates().flatMap((block) => (block.hash === null ? [] : [block.id]));
}

function refCounts(manager: KvCacheManager): number[] {
  return manager.blockStates().map((block) => block.refCount);
}

/** Admits a request with whatever prefix is cached and computes `numNewTokens` of it (all of it by default). */
function admit(manager: KvCacheManager, requestId: RequestId, prompt: readonly TokenId[], numNewTokens?: number) {
  const cachedPrefix = manager.findCachedPrefix(prompt);
  const toCompute = numNewTokens ?? prompt.length - cachedPrefix.numTokens;
  const blocks = checked(manager, () => manager.allocateSlots(requestId, { numNewTokens: toCompute, cachedPrefix }));
  const numComputedTokens = cachedPrefix.numTokens + toCompute;
  if (blocks !== null) checked(manager, () => manager.commitTokens(requestId, prompt, numComputedTokens));
  return ids(blocks);
}

/** Everything a failed allocation must leave alone. */
function snapshot(manager: KvCacheManager): unknown {
  return { stats: manager.stats(), blocks: manager.blockStates(), free: manager.freeBlockIds() };
}

const promptA = tokens(10, 100);
/** Shares promptA's first two blocks. */
const promptB = [...promptA.slice(0, 8), ...tokens(5, 200)];

test("a first request gets the lowest free block ids for all its tokens", () => {
  const manager = makeManager();
  assert.deepEqual(admit(manager, a, promptA), [0, 1, 2]);
  assert.deepEqual(refCounts(manager), [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(manager.freeBlockIds(), [3, 4, 5, 6, 7, 8, 9]);
  assert.equal(manager.numComputedTokens(a), 10);
  assert.deepEqual(manager.stats(), {
    numBlocks: 10,
    blockSize: BLOCK_SIZE,
    numFreeBlocks: 7,
    numCachedFreeBlocks: 0,
    numUsedBlocks: 3,
    usage: 0.3,
    queriedTokens: 0,
    hitTokens: 0,
  });
});

test("a second request shares a cached 2-block prefix, and frees append each request's blocks in reverse", () => {
  const manager = makeManager();
  assert.deepEqual(admit(manager, a, promptA), [0, 1, 2]);
  const prefix = manager.findCachedPrefix(promptB);
  assert.deepEqual(ids(prefix.blocks), [0, 1]);
  assert.equal(prefix.numTokens, 8);
  assert.deepEqual(admit(manager, b, promptB), [3, 4]);
  assert.deepEqual(ids(manager.blocksOf(b)), [0, 1, 3, 4]);
  assert.deepEqual(refCounts(manager), [2, 2, 1, 1, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual(manager.freeBlockIds(), [5, 6, 7, 8, 9]);

  checked(manager, () => manager.free(a));
  assert.deepEqual(refCounts(manager), [1, 1, 0, 1, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual(manager.freeBlockIds(), [5, 6, 7, 8, 9, 2]);
  checked(manager, () => manager.free(b));
  assert.deepEqual(manager.freeBlockIds(), [5, 6, 7, 8, 9, 2, 4, 3, 1, 0]);
  assert.equal(manager.stats().numCachedFreeBlocks, 3, "blocks 0, 1 and 3 are full and stay cached");
  assert.equal(manager.free(b), false, "freeing twice is a no-op");
});

test("a prefix hit on cached free blocks takes them out of the free queue wherever they are", () => {
  const manager = makeManager();
  admit(manager, a, promptA);
  admit(manager, b, promptB);
  checked(manager, () => manager.free(a));
  checked(manager, () => manager.free(b));
  assert.deepEqual(ids(manager.findCachedPrefix(promptB).blocks), [0, 1, 3]);
  assert.deepEqual(admit(manager, c, promptB), [5]);
  assert.deepEqual(ids(manager.blocksOf(c)), [0, 1, 3, 5]);
  assert.deepEqual(manager.freeBlockIds(), [6, 7, 8, 9, 2, 4]);
  assert.deepEqual(refCounts(manager), [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]);
  assert.equal(manager.numComputedTokens(c), 13);
});

test("the oldest free cached block is evicted first: a chain's tail before its head", () => {
  const evicted: [number, BlockHash][] = [];
  const manager = makeManager({ onEvict: (block, hash) => evicted.push([block.id, hash]) });
  admit(manager, a, promptA);
  admit(manager, b, promptB);
  const hashOfBlock3 = manager.blocksOf(b)[2]?.hash;
  checked(manager, () => manager.free(a));
  checked(manager, () => manager.free(b));

  assert.deepEqual(admit(manager, c, tokens(24, 300)), [5, 6, 7, 8, 9, 2], "uncached free blocks come first");
  assert.deepEqual(evicted, []);
  assert.deepEqual(admit(manager, d, tokens(8, 400)), [4, 3]);
  assert.deepEqual(evicted, [[3, hashOfBlock3]]);
  assert.notEqual(manager.blockStates()[3]?.hash, hashOfBlock3, "d's contents replaced it");
  assert.deepEqual(ids(manager.findCachedPrefix(promptB).blocks), [0, 1], "the evicted block no longer matches");
  assert.deepEqual(manager.freeBlockIds(), [1, 0]);
  assert.equal(manager.stats().numCachedFreeBlocks, 2);
});

test("findCachedPrefix never covers the whole prompt, so the last token is computed for its logits", () => {
  const manager = makeManager();
  admit(manager, a, promptA);
  assert.deepEqual(ids(manager.findCachedPrefix(promptA.slice(0, 8)).blocks), [0]);
  assert.equal(manager.findCachedPrefix(promptA.slice(0, 8)).numTokens, 4);
  assert.deepEqual(ids(manager.findCachedPrefix(promptA.slice(0, 9)).blocks), [0, 1]);
  assert.deepEqual(ids(manager.findCachedPrefix(promptA.slice(0, 4)).blocks), []);
  assert.equal(manager.findCachedPrefix([]).numTokens, 0);
  assert.equal(manager.findCachedPrefix([...promptA.slice(0, 4), ...tokenIds(999), ...promptA.slice(5)]).numTokens, 4);
});

test("a failed allocation returns null and changes nothing, for new and running requests", () => {
  const manager = makeManager({ numBlocks: 4 });
  assert.deepEqual(admit(manager, a, tokens(12, 100)), [0, 1, 2]);
  const before = snapshot(manager);
  assert.equal(
    checked(manager, () => manager.allocateSlots(b, { numNewTokens: 8 })),
    null,
  );
  assert.equal(manager.hasRequest(b), false);
  assert.deepEqual(snapshot(manager), before);
  assert.equal(
    checked(manager, () => manager.allocateSlots(a, { numNewTokens: 5 })),
    null,
  );
  assert.deepEqual(ids(manager.blocksOf(a)), [0, 1, 2]);
  assert.deepEqual(snapshot(manager), before);
  assert.deepEqual(ids(checked(manager, () => manager.allocateSlots(a, { numNewTokens: 4 }))), [3]);
});

test("a free prefix block counts once against the free blocks, and a failed prefix allocation touches nothing", () => {
  const manager = makeManager({ numBlocks: 4 });
  const base = tokens(9, 100);
  assert.deepEqual(admit(manager, a, base), [0, 1, 2]);
  checked(manager, () => manager.free(a));
  assert.deepEqual(manager.freeBlockIds(), [3, 2, 1, 0]);

  const tooLong = [...base.slice(0, 8), ...tokens(9, 500)];
  const before = snapshot(manager);
  assert.equal(admit(manager, c, tooLong), null, "17 tokens need 5 blocks");
  assert.deepEqual(snapshot(manager), before);

  const exact = [...base.slice(0, 8), ...tokens(8, 500)];
  assert.deepEqual(admit(manager, b, exact), [3, 2], "2 prefix blocks + 2 new = all 4 blocks");
  assert.deepEqual(ids(manager.blocksOf(b)), [0, 1, 3, 2]);
  assert.equal(manager.stats().numFreeBlocks, 0);
});

test("commitTokens caches only full committed blocks; reserved and partial ones stay private", () => {
  const manager = makeManager();
  const prompt = tokens(10, 100);
  assert.deepEqual(ids(checked(manager, () => manager.allocateSlots(a, { numNewTokens: 6 }))), [0, 1]);
  checked(manager, () => manager.commitTokens(a, prompt, 6));
  assert.deepEqual(cachedIds(manager), [0]);
  assert.deepEqual(ids(checked(manager, () => manager.allocateSlots(a, { numNewTokens: 4 }))), [2]);
  // Say two of the four were speculative and rejected: only 8 tokens are verified.
  checked(manager, () => manager.commitTokens(a, prompt, 8));
  assert.deepEqual(cachedIds(manager), [0, 1]);
  assert.equal(manager.findCachedPrefix(prompt).numTokens, 8);
  assert.deepEqual(ids(checked(manager, () => manager.allocateSlots(a, { numNewTokens: 2 }))), []);
  checked(manager, () => manager.commitTokens(a, prompt, 10));
  assert.equal(manager.blockStates()[2]?.hash, null, "a partially filled last block is never hashed");
});

test("two requests computing the same block at once keep one cached copy", () => {
  const manager = makeManager();
  const prompt = tokens(9, 100);
  assert.deepEqual(ids(checked(manager, () => manager.allocateSlots(a, { numNewTokens: 9 }))), [0, 1, 2]);
  assert.deepEqual(ids(checked(manager, () => manager.allocateSlots(b, { numNewTokens: 9 }))), [3, 4, 5]);
  checked(manager, () => manager.commitTokens(a, prompt, 9));
  checked(manager, () => manager.commitTokens(b, prompt, 9));
  assert.deepEqual(cachedIds(manager), [0, 1]);
  assert.deepEqual(ids(manager.findCachedPrefix(prompt).blocks), [0, 1]);
  checked(manager, () => manager.free(a));
  checked(manager, () => manager.free(b));
  assert.equal(manager.stats().numCachedFreeBlocks, 2);
  assert.deepEqual(manager.freeBlockIds(), [6, 7, 8, 9, 2, 1, 0, 5, 4, 3]);
});

test("the onEvict hook may uncache other free blocks through the manager", () => {
  const evicted: number[] = [];
  const manager: KvCacheManager = makeManager({
    numBlocks: 5,
    onEvict: (block) => {
      evicted.push(block.id);
      // Say the engine keeps a chain's cells together: losing one block drops the rest of the chain.
      for (const other of manager.findCachedPrefix(tokens(13, 100)).blocks) manager.uncache(other);
    },
  });
  assert.deepEqual(admit(manager, a, tokens(13, 100)), [0, 1, 2, 3]);
  checked(manager, () => manager.free(a));
  assert.deepEqual(manager.freeBlockIds(), [4, 3, 2, 1, 0]);
  assert.equal(manager.stats().numCachedFreeBlocks, 3);
  assert.deepEqual(admit(manager, b, tokens(12, 700)), [4, 3, 2]);
  assert.deepEqual(evicted, [2]);
  assert.equal(manager.stats().numCachedFreeBlocks, 0, "the hook uncached blocks 0 and 1 too");
  assert.deepEqual(manager.freeBlockIds(), [1, 0]);
});

test("the onEvict hook may not allocate; the failed allocation leaks no block", () => {
  const manager: KvCacheManager = makeManager({
    numBlocks: 3,
    onEvict: () => void manager.allocateSlots(inner, { numNewTokens: 1 }),
  });
  admit(manager, a, tokens(5, 100));
  checked(manager, () => manager.free(a));
  const before = snapshot(manager);
  assert.throws(() => manager.allocateSlots(b, { numNewTokens: 12 }), /from inside onEvict/);
  manager.checkInvariants();
  assert.equal(manager.hasRequest(b), false);
  assert.equal(manager.stats().numFreeBlocks, 3);
  assert.notDeepEqual(snapshot(manager), before, "the evicted block lost its hash; that is the only change");
  assert.equal(manager.stats().numCachedFreeBlocks, 0);
});

test("a throwing onEvict during an allocation with a cached prefix gives the prefix blocks back", () => {
  const manager: KvCacheManager = makeManager({
    numBlocks: 4,
    onEvict: () => {
      throw new Error("engine failure");
    },
  });
  const base = tokens(9, 100);
  admit(manager, a, base);
  checked(manager, () => manager.free(a));
  assert.deepEqual(manager.freeBlockIds(), [3, 2, 1, 0]);
  const prompt = [...base.slice(0, 4), ...tokens(9, 600)];
  assert.deepEqual(ids(manager.findCachedPrefix(prompt).blocks), [0]);
  assert.throws(() => admit(manager, b, prompt), /engine failure/);
  manager.checkInvariants();
  assert.equal(manager.hasRequest(b), false);
  assert.equal(manager.stats().numFreeBlocks, 4);
  assert.deepEqual(refCounts(manager), [0, 0, 0, 0]);
});

test("resetPrefixCache refuses while a cached block is in use and evicts every cached block once all are free", () => {
  const evicted: number[] = [];
  const manager = makeManager({ onEvict: (block) => evicted.push(block.id) });
  admit(manager, a, promptA);
  assert.equal(
    checked(manager, () => manager.resetPrefixCache()),
    false,
  );
  assert.deepEqual(evicted, []);
  assert.equal(manager.findCachedPrefix(promptA).numTokens, 8);
  checked(manager, () => manager.free(a));
  assert.equal(
    checked(manager, () => manager.resetPrefixCache()),
    true,
  );
  assert.deepEqual(evicted.sort(), [0, 1]);
  assert.equal(manager.findCachedPrefix(promptA).numTokens, 0);
  assert.equal(manager.stats().numCachedFreeBlocks, 0);
  assert.deepEqual(manager.freeBlockIds(), [3, 4, 5, 6, 7, 8, 9, 2, 1, 0], "the free order is kept");
});

test("without prefix caching nothing is hashed, looked up or reused", () => {
  const manager = makeManager({ enablePrefixCaching: false });
  assert.deepEqual(admit(manager, a, promptA), [0, 1, 2]);
  assert.ok(manager.blockStates().every((block) => block.hash === null));
  assert.equal(manager.findCachedPrefix(promptA).numTokens, 0);
  checked(manager, () => manager.free(a));
  assert.deepEqual(admit(manager, b, promptA), [3, 4, 5]);
  assert.equal(manager.stats().numCachedFreeBlocks, 0);
});

test("prefix query counts are recorded explicitly, once per admitted request", () => {
  const manager = makeManager();
  admit(manager, a, promptA);
  manager.recordPrefixQuery(promptA.length, 0);
  const prefix = manager.findCachedPrefix(promptB);
  manager.findCachedPrefix(promptB);
  manager.recordPrefixQuery(promptB.length, prefix.numTokens);
  assert.equal(manager.stats().queriedTokens, 23);
  assert.equal(manager.stats().hitTokens, 8);
  assert.throws(() => manager.recordPrefixQuery(4, 5), RangeError);
});

test("sizes: blocks needed for a token count and whether a request could ever fit", () => {
  const manager = makeManager();
  assert.equal(manager.numBlocksNeeded(0), 0);
  assert.equal(manager.numBlocksNeeded(4), 1);
  assert.equal(manager.numBlocksNeeded(5), 2);
  assert.equal(manager.canEverFit(40), true);
  assert.equal(manager.canEverFit(41), false);
  assert.equal(manager.allocateSlots(huge, { numNewTokens: 41 }), null);
  assert.throws(() => new KvCacheManager({ numBlocks: 0, blockSize: 4, enablePrefixCaching: true }), RangeError);
  assert.throws(() => new KvCacheManager({ numBlocks: 4, blockSize: 0, enablePrefixCaching: true }), RangeError);
});

test("caller bugs throw: a stale prefix, a prefix for a running request, a commit past the blocks or back", () => {
  const manager = makeManager({ numBlocks: 4 });
  admit(manager, a, tokens(9, 100));
  checked(manager, () => manager.free(a));
  const stale = manager.findCachedPrefix(tokens(9, 100));
  assert.equal(stale.numTokens, 8);
  admit(manager, b, tokens(16, 900));
  checked(manager, () => manager.free(b));
  assert.throws(() => manager.allocateSlots(c, { numNewTokens: 1, cachedPrefix: stale }), /no longer cached/);
  manager.checkInvariants();

  assert.deepEqual(admit(manager, d, tokens(5, 100), 3), [0]);
  assert.throws(() => manager.allocateSlots(d, { numNewTokens: 1, cachedPrefix: stale }), /first allocation/);
  assert.throws(() => manager.commitTokens(d, tokens(5, 100), 5), /blocks for 4/);
  assert.throws(() => manager.commitTokens(d, tokens(5, 100), 2), /below 3 committed/);
  assert.throws(() => manager.commitTokens(d, tokens(2, 100), 3), /of only 2 tokens/);
  assert.throws(() => manager.commitTokens(nobody, [], 0), /no blocks for request nobody/);
  assert.throws(() => manager.allocateSlots(d, { numNewTokens: -1 }), RangeError);
  manager.checkInvariants();
  assert.equal(manager.numComputedTokens(d), 3);
});
