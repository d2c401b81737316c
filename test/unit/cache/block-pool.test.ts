import assert from "node:assert/strict";
import { test } from "node:test";
import { type BlockHash, type BlockId, hashBlock, type KvBlock } from "../../../src/cache/block.ts";
import { BlockPool, type EvictHook } from "../../../src/cache/block-pool.ts";
import { tokenIds } from "../../helpers/ids.ts";

/** Runs `mutate`, then checks every pool invariant. */
function checked<T>(pool: BlockPool, mutate: () => T): T {
  const result = mutate();
  pool.checkInvariants();
  return result;
}

function ids(blocks: readonly KvBlock[]): number[] {
  return blocks.map((block) => block.id);
}

function refCounts(pool: BlockPool): number[] {
  return Array.from({ length: pool.numBlocks }, (_, id) => pool.getBlock(id as BlockId).refCount);
}

const hashA = hashBlock(null, tokenIds(1, 2));
const hashB = hashBlock(hashA, tokenIds(3, 4));
const hashC = hashBlock(hashB, tokenIds(5, 6));

test("takeNew hands out blocks from the front of the free queue with refCount 1", () => {
  const pool = new BlockPool({ numBlocks: 5 });
  pool.checkInvariants();
  assert.deepEqual(ids(checked(pool, () => pool.takeNew(3))), [0, 1, 2]);
  assert.deepEqual(refCounts(pool), [1, 1, 1, 0, 0]);
  assert.deepEqual(pool.freeBlockIds(), [3, 4]);
  assert.deepEqual(ids(checked(pool, () => pool.takeNew(0))), []);
  assert.throws(() => pool.takeNew(3), RangeError, "more than is free is a caller bug");
  pool.checkInvariants();
  assert.deepEqual(pool.freeBlockIds(), [3, 4]);
});

test("release appends blocks reaching refCount 0 in the given order and keeps shared ones", () => {
  const pool = new BlockPool({ numBlocks: 5 });
  const blocks = checked(pool, () => pool.takeNew(4));
  checked(pool, () => pool.touch([blocks[0] as KvBlock]));
  assert.deepEqual(refCounts(pool), [2, 1, 1, 1, 0]);
  checked(pool, () => pool.release([...blocks].reverse()));
  assert.deepEqual(refCounts(pool), [1, 0, 0, 0, 0]);
  assert.deepEqual(pool.freeBlockIds(), [4, 3, 2, 1]);
  checked(pool, () => pool.release([blocks[0] as KvBlock]));
  assert.deepEqual(pool.freeBlockIds(), [4, 3, 2, 1, 0]);
});

test("releasing a block more often than it is held throws before changing anything", () => {
  const pool = new BlockPool({ numBlocks: 3 });
  const [block] = checked(pool, () => pool.takeNew(1));
  assert.throws(() => pool.release([block as KvBlock, block as KvBlock]), /released more often/);
  pool.checkInvariants();
  assert.deepEqual(refCounts(pool), [1, 0, 0]);
});

test("touching a cached free block takes it out of the middle of the free queue", () => {
  const pool = new BlockPool({ numBlocks: 4 });
  const blocks = checked(pool, () => pool.takeNew(4));
  assert.equal(
    checked(pool, () => pool.cache(blocks[1] as KvBlock, hashA)),
    true,
  );
  checked(pool, () => pool.release(blocks));
  assert.deepEqual(pool.freeBlockIds(), [0, 1, 2, 3]);
  assert.equal(pool.numCachedFree, 1);
  const hit = pool.lookup(hashA);
  assert.equal(hit, blocks[1]);
  checked(pool, () => pool.touch([hit as KvBlock]));
  assert.deepEqual(pool.freeBlockIds(), [0, 2, 3]);
  assert.equal(hit?.refCount, 1);
  assert.equal(hit?.hash, hashA, "a hit keeps its hash");
  assert.equal(pool.numCachedFree, 0);
});

test("takeNew evicts the oldest free cached block lazily and tells onEvict before handing it out", () => {
  const evicted: [number, BlockHash, number, boolean][] = [];
  const pool: BlockPool = new BlockPool({
    numBlocks: 3,
    onEvict: (block, hash) => evicted.push([block.id, hash, block.refCount, pool.lookup(hash) === null]),
  });
  const blocks = checked(pool, () => pool.takeNew(3));
  checked(pool, () => pool.cache(blocks[0] as KvBlock, hashA));
  checked(pool, () => pool.cache(blocks[1] as KvBlock, hashB));
  checked(pool, () => pool.release([blocks[1] as KvBlock, blocks[0] as KvBlock, blocks[2] as KvBlock]));
  assert.deepEqual(pool.freeBlockIds(), [1, 0, 2]);
  assert.equal(pool.numCachedFree, 2);

  assert.deepEqual(ids(checked(pool, () => pool.takeNew(1))), [1]);
  assert.deepEqual(evicted, [[1, hashB, 0, true]], "evicted while still free and already out of the map");
  assert.equal(blocks[1]?.hash, null);
  assert.equal(pool.lookup(hashB), null);
  assert.equal(pool.lookup(hashA), blocks[0], "the younger cached block stays findable");
  assert.equal(pool.numCachedFree, 1);
  assert.equal(pool.numCached, 1);
});

test("cache keeps one block per hash: a second block with the same contents stays uncached", () => {
  const pool = new BlockPool({ numBlocks: 3 });
  const [first, second] = checked(pool, () => pool.takeNew(2)) as [KvBlock, KvBlock];
  assert.equal(
    checked(pool, () => pool.cache(first, hashA)),
    true,
  );
  assert.equal(
    checked(pool, () => pool.cache(second, hashA)),
    false,
  );
  assert.equal(second.hash, null);
  assert.equal(pool.lookup(hashA), first);
  assert.equal(
    checked(pool, () => pool.cache(first, hashA)),
    true,
    "caching again under the same hash is a no-op",
  );
  assert.throws(() => pool.cache(first, hashB), /already cached under another hash/);
  pool.checkInvariants();
});

test("uncache forgets a free block's contents and leaves it where it is in the free queue", () => {
  const pool = new BlockPool({ numBlocks: 3 });
  const blocks = checked(pool, () => pool.takeNew(3));
  checked(pool, () => pool.cache(blocks[1] as KvBlock, hashA));
  checked(pool, () => pool.release(blocks));
  assert.equal(
    checked(pool, () => pool.uncache(blocks[1] as KvBlock)),
    true,
  );
  assert.equal(
    checked(pool, () => pool.uncache(blocks[1] as KvBlock)),
    false,
  );
  assert.deepEqual(pool.freeBlockIds(), [0, 1, 2]);
  assert.equal(pool.numCachedFree, 0);
  assert.equal(pool.lookup(hashA), null);
});

test("onEvict may uncache other free blocks re-entrantly, and takeNew then reuses them as plain free blocks", () => {
  const evicted: number[] = [];
  const pool: BlockPool = new BlockPool({
    numBlocks: 4,
    onEvict: (block, hash) => {
      evicted.push(block.id);
      pool.checkInvariants();
      // Drop the blocks that chain from the evicted one: without it they can never be hit again.
      for (const child of [hashB, hashC]) {
        const descendant = pool.lookup(child);
        if (hash === hashA && descendant !== null) pool.uncache(descendant);
      }
    },
  });
  const blocks = checked(pool, () => pool.takeNew(4));
  checked(pool, () => pool.cache(blocks[0] as KvBlock, hashA));
  checked(pool, () => pool.cache(blocks[1] as KvBlock, hashB));
  checked(pool, () => pool.cache(blocks[2] as KvBlock, hashC));
  checked(pool, () => pool.release([0, 3, 2, 1].map((index) => blocks[index] as KvBlock)));
  assert.deepEqual(pool.freeBlockIds(), [0, 3, 2, 1]);
  assert.equal(pool.numCachedFree, 3);

  assert.deepEqual(ids(checked(pool, () => pool.takeNew(3))), [0, 3, 2]);
  assert.deepEqual(evicted, [0], "block 2 was uncached by the hook, so taking it evicts nothing more");
  assert.equal(pool.numCached, 0);
  assert.equal(pool.numCachedFree, 0);
  assert.deepEqual(pool.freeBlockIds(), [1]);
});

test("onEvict may not take, touch or release blocks, and a throwing hook leaks nothing", () => {
  const pool: BlockPool = new BlockPool({ numBlocks: 3, onEvict: () => void pool.takeNew(1) });
  const blocks = checked(pool, () => pool.takeNew(3));
  checked(pool, () => pool.cache(blocks[1] as KvBlock, hashA));
  checked(pool, () => pool.release(blocks));
  assert.throws(() => pool.takeNew(2), /takeNew called from inside onEvict/);
  pool.checkInvariants();
  assert.equal(pool.numFree, 3, "block 0, taken before the hook threw, went back");
  assert.deepEqual(pool.freeBlockIds(), [1, 2, 0]);
});

test("resetCache refuses while a cached block is in use, then evicts every cached block through onEvict", () => {
  const evicted: number[] = [];
  const onEvict: EvictHook = (block) => evicted.push(block.id);
  const pool = new BlockPool({ numBlocks: 3, onEvict });
  const blocks = checked(pool, () => pool.takeNew(2));
  checked(pool, () => pool.cache(blocks[0] as KvBlock, hashA));
  checked(pool, () => pool.cache(blocks[1] as KvBlock, hashB));
  checked(pool, () => pool.release([blocks[1] as KvBlock]));
  assert.equal(
    checked(pool, () => pool.resetCache()),
    false,
  );
  assert.equal(pool.numCached, 2);
  assert.deepEqual(evicted, []);
  checked(pool, () => pool.release([blocks[0] as KvBlock]));
  assert.equal(
    checked(pool, () => pool.resetCache()),
    true,
  );
  assert.deepEqual(evicted.sort(), [0, 1]);
  assert.equal(pool.numCached, 0);
  assert.deepEqual(pool.freeBlockIds(), [2, 1, 0]);
});

test("checkInvariants names the inconsistency", () => {
  const pool = new BlockPool({ numBlocks: 3 });
  const [block] = checked(pool, () => pool.takeNew(1)) as [KvBlock];
  block.refCount = 0;
  assert.throws(() => pool.checkInvariants(), /block 0 has refCount 0 but is not free/);
  block.refCount = 1;
  block.hash = hashA;
  assert.throws(() => pool.checkInvariants(), /prefix map does not point to it/);
});
