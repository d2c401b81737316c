import assert from "node:assert/strict";
import test from "node:test";
import type { BlockId } from "../../../src/cache/block.ts";
import { CellHolders, type CellOps, type HeldBlock } from "../../../src/cache/cell-holders.ts";
import type { SavedCells, SequenceId } from "../../../src/engine/engine.ts";

const BLOCK_SIZE = 4;

interface Block extends HeldBlock {
  hash: string | null;
  refCount: number;
}

/** Records every engine call; saved cells carry the sequence they came from. */
class RecordingOps implements CellOps {
  readonly calls: string[] = [];
  canRestore = true;
  shareCells(src: SequenceId, dst: SequenceId, startPos: number, endPos: number): void {
    this.calls.push(`share ${src}->${dst} ${startPos}..${endPos}`);
  }
  truncateSequence(sequenceId: SequenceId, fromPos: number): void {
    this.calls.push(`truncate ${sequenceId} ${fromPos}`);
  }
  releaseSequence(sequenceId: SequenceId): void {
    this.calls.push(`release ${sequenceId}`);
  }
  saveCells(sequenceId: SequenceId, numTokens: number): SavedCells {
    this.calls.push(`save ${sequenceId} ${numTokens}`);
    return { numTokens, numBytes: numTokens * 10 };
  }
  restoreCells(saved: SavedCells, dst: SequenceId, startPos: number, endPos: number): boolean {
    this.calls.push(`restore ${saved.numTokens}->${dst} ${startPos}..${endPos}`);
    return this.canRestore;
  }
}

function blocks(count: number, firstId = 0): Block[] {
  return Array.from({ length: count }, (_, index) => ({
    id: (firstId + index) as BlockId,
    hash: `h${firstId + index}`,
    refCount: 0,
  }));
}

function setup(
  numCells = 64,
  maxSavedTokens = 128,
): { ops: RecordingOps; holders: CellHolders<Block>; uncached: number[] } {
  const ops = new RecordingOps();
  const uncached: number[] = [];
  const holders = new CellHolders<Block>(ops, {
    blockSize: BLOCK_SIZE,
    numCells,
    maxSavedTokens,
    uncache: (block) => {
      uncached.push(block.id);
      block.hash = null;
    },
  });
  return { ops, holders, uncached };
}

const seq = (id: number): SequenceId => id as SequenceId;

test("a finished request's cached blocks are saved out of the pool and restored into the next request that needs them", () => {
  const { ops, holders } = setup();
  const chain = blocks(3);
  holders.onAllocated(seq(0), chain);
  holders.release(seq(0), true);
  assert.deepEqual(ops.calls, ["save 0 12", "release 0"]);
  assert.equal(holders.numSaved, 1);
  assert.equal(holders.numSavedBytes, 120);

  assert.equal(holders.numForkable(chain.slice(0, 2)), 2);
  holders.fork(seq(1), chain.slice(0, 2));
  assert.deepEqual(
    ops.calls.slice(2),
    ["restore 12->1 0..8"],
    "the whole copy goes in, cut to the two blocks asked for",
  );
  holders.checkInvariants(chain);
});

test("a running sequence that holds the prefix is forked from without a copy, even when a saved copy exists", () => {
  const { ops, holders } = setup();
  const chain = blocks(2);
  holders.onAllocated(seq(0), chain);
  holders.release(seq(0), true);
  holders.fork(seq(1), chain);
  holders.fork(seq(2), chain);
  assert.deepEqual(ops.calls, ["save 0 8", "release 0", "restore 8->1 0..8", "share 1->2 0..8"]);
  holders.checkInvariants(chain);
});

test("a prefix whose first blocks a running sequence holds forks them and restores only the saved blocks after them", () => {
  const { ops, holders } = setup();
  const chain = blocks(4);
  holders.onAllocated(seq(0), chain);
  holders.release(seq(0), true);
  holders.fork(seq(1), chain.slice(0, 2));
  // A 4-block copy is saved, and sequence 1 holds blocks 0 and 1: the copy gives blocks 2 and 3 only (its cells of
  // blocks 0 and 1 would live in the pool twice while the blocks count once), restored before the fork.
  assert.equal(holders.numForkable(chain), 4);
  holders.fork(seq(2), chain);
  assert.deepEqual(ops.calls.slice(-2), ["restore 16->2 8..16", "share 1->2 0..8"]);
  holders.checkInvariants(chain);
  holders.fork(seq(3), chain.slice(0, 3));
  assert.deepEqual(
    ops.calls.slice(-2),
    ["share 1->3 0..8", "share 2->3 8..12"],
    "blocks running sequences hold are forked, never restored",
  );
  holders.checkInvariants(chain);
});

test("blocks other holders keep already are not saved again, and the blocks after the cached ones are uncached", () => {
  const { ops, holders, uncached } = setup();
  const chain = blocks(3);
  holders.onAllocated(seq(0), chain);
  holders.fork(seq(1), chain.slice(0, 2));
  chain[2]!.hash = null;
  const tail = blocks(1, 10);
  holders.onAllocated(seq(1), tail);
  holders.release(seq(0), true);
  assert.deepEqual(ops.calls.slice(-1), ["release 0"], "sequence 1 still holds blocks 0 and 1");
  holders.release(seq(1), true);
  assert.deepEqual(ops.calls.slice(-2), ["save 1 12", "release 1"]);
  assert.deepEqual(uncached, [], "nothing cached lost its cells");
  holders.checkInvariants([...chain, ...tail]);
});

test("a saved copy that the pool has no room for is not offered, so the prefix is recomputed", () => {
  const { holders } = setup(16);
  const chain = blocks(3);
  holders.onAllocated(seq(0), chain);
  holders.release(seq(0), true);
  holders.onAllocated(seq(1), blocks(2, 20));
  assert.equal(holders.numForkable(chain), 0, "16 cells minus 8 held leave fewer than the 12 to restore");
  assert.throws(() => holders.fork(seq(2), chain), /only 0 of 3/);
});

test("a saved prefix that a newer one extends is dropped, and the oldest go first past the host budget", () => {
  const { holders, uncached } = setup(64, 20);
  const chain = blocks(4);
  holders.onAllocated(seq(0), chain.slice(0, 2));
  holders.release(seq(0), true);
  holders.fork(seq(1), chain.slice(0, 2));
  holders.onAllocated(seq(1), chain.slice(2, 4));
  holders.release(seq(1), true);
  assert.equal(holders.numSaved, 1, "the 2-block copy is covered by the 4-block one");
  assert.equal(holders.numSavedBytes, 160);

  const other = blocks(2, 30);
  holders.onAllocated(seq(2), other);
  holders.release(seq(2), true);
  assert.equal(holders.numSaved, 1, "16 + 8 saved tokens exceed 20: the older copy goes");
  assert.deepEqual(uncached, [0, 1, 2, 3]);
  holders.checkInvariants([...chain, ...other]);
});

test("evicting a block cuts every saved chain there, and a chain cut to nothing frees its copy", () => {
  const { ops, holders } = setup();
  const chain = blocks(3);
  holders.onAllocated(seq(0), chain);
  holders.release(seq(0), true);
  holders.onEvict(chain[1]!);
  assert.equal(holders.numForkable(chain), 1);
  holders.fork(seq(1), chain.slice(0, 1));
  assert.deepEqual(ops.calls.slice(-1), ["restore 12->1 0..4"]);
  holders.release(seq(1), false);
  holders.onEvict(chain[0]!);
  assert.equal(holders.numSaved, 0);
  assert.equal(holders.numSavedBytes, 0);
});

test("a restore that llama.cpp refuses despite the room check is a bug and says so", () => {
  const { ops, holders } = setup();
  const chain = blocks(1);
  holders.onAllocated(seq(0), chain);
  holders.release(seq(0), true);
  ops.canRestore = false;
  assert.throws(() => holders.fork(seq(1), chain), /no room to restore 4 saved cells/);
});
