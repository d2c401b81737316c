import assert from "node:assert/strict";
import { test } from "node:test";
import { type BlockId, KvBlock } from "../../../src/cache/block.ts";
import { FreeBlockQueue } from "../../../src/cache/free-block-queue.ts";

function makeBlocks(count: number): KvBlock[] {
  return Array.from({ length: count }, (_, id) => new KvBlock(id as BlockId));
}

/** Runs `mutate`, then checks the queue's links. */
function checked<T>(queue: FreeBlockQueue, mutate: () => T): T {
  const result = mutate();
  queue.checkInvariants();
  return result;
}

test("a new queue holds every block in id order", () => {
  const queue = new FreeBlockQueue(makeBlocks(5));
  queue.checkInvariants();
  assert.deepEqual(queue.toIds(), [0, 1, 2, 3, 4]);
  assert.equal(queue.length, 5);
});

test("popFront takes blocks in order and pushBack appends them at the tail", () => {
  const blocks = makeBlocks(4);
  const queue = new FreeBlockQueue(blocks);
  assert.equal(
    checked(queue, () => queue.popFront()),
    blocks[0],
  );
  assert.deepEqual(queue.toIds(), [1, 2, 3]);
  assert.equal(
    checked(queue, () => queue.popFront()),
    blocks[1],
  );
  assert.deepEqual(queue.toIds(), [2, 3]);
  checked(queue, () => queue.pushBack(blocks[0] as KvBlock));
  assert.deepEqual(queue.toIds(), [2, 3, 0]);
  checked(queue, () => queue.pushBack(blocks[1] as KvBlock));
  assert.deepEqual(queue.toIds(), [2, 3, 0, 1]);
  assert.equal(queue.length, 4);
});

test("remove takes a block from the head, the tail or the middle in place", () => {
  const blocks = makeBlocks(6);
  const queue = new FreeBlockQueue(blocks);
  checked(queue, () => queue.remove(blocks[0] as KvBlock));
  assert.deepEqual(queue.toIds(), [1, 2, 3, 4, 5], "from the head");
  checked(queue, () => queue.remove(blocks[5] as KvBlock));
  assert.deepEqual(queue.toIds(), [1, 2, 3, 4], "from the tail");
  checked(queue, () => queue.remove(blocks[3] as KvBlock));
  assert.deepEqual(queue.toIds(), [1, 2, 4], "from the middle");
  assert.equal(queue.length, 3);
  assert.equal(blocks[3]?.prevFree, null, "a removed block is unlinked");
  assert.equal(blocks[3]?.nextFree, null);
  assert.equal(queue.has(blocks[3] as KvBlock), false);
  assert.equal(queue.has(blocks[2] as KvBlock), true);
  checked(queue, () => queue.pushBackAll([blocks[5] as KvBlock, blocks[0] as KvBlock, blocks[3] as KvBlock]));
  assert.deepEqual(queue.toIds(), [1, 2, 4, 5, 0, 3]);
});

test("the sentinels never leak: an emptied queue refuses popFront and peekFront returns null", () => {
  const blocks = makeBlocks(2);
  const queue = new FreeBlockQueue(blocks);
  checked(queue, () => queue.remove(blocks[1] as KvBlock));
  assert.equal(
    checked(queue, () => queue.popFront()),
    blocks[0],
  );
  assert.equal(queue.length, 0);
  assert.deepEqual(queue.toIds(), []);
  assert.equal(queue.peekFront(), null);
  assert.throws(() => queue.popFront(), RangeError);
  checked(queue, () => queue.pushBack(blocks[1] as KvBlock));
  assert.deepEqual(queue.toIds(), [1]);
  assert.equal(queue.peekFront(), blocks[1]);
  for (const block of queue) assert.ok(block.id >= 0, "iteration yields no sentinel");
});

test("removing a block that is not queued or queueing one twice throws and changes nothing", () => {
  const blocks = makeBlocks(3);
  const queue = new FreeBlockQueue(blocks);
  const popped = checked(queue, () => queue.popFront());
  assert.throws(() => queue.remove(popped), /not in the free-block queue/);
  assert.throws(() => queue.pushBack(blocks[1] as KvBlock), /already in a free-block queue/);
  queue.checkInvariants();
  assert.deepEqual(queue.toIds(), [1, 2]);
});

test("checkInvariants reports a broken back link", () => {
  const blocks = makeBlocks(3);
  const queue = new FreeBlockQueue(blocks);
  (blocks[2] as KvBlock).prevFree = blocks[0] as KvBlock;
  assert.throws(() => queue.checkInvariants(), /block 2 does not link back to block 1/);
});
