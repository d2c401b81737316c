import assert from "node:assert/strict";
import { test } from "node:test";
import {
  EmbeddingBatcher,
  EmbeddingQueueFullError,
  type PoolingContext,
} from "../../../src/engine/embedding-batcher.ts";
import type { TokenId } from "../../../src/engine/engine.ts";

/** Pools by summing token ids; records each decode's inputs; can be held and failed. */
class FakePooling implements PoolingContext {
  readonly decodes: (readonly (readonly TokenId[])[])[] = [];
  failNext = false;
  gate: Promise<void> = Promise.resolve();

  async embedBatch(inputs: readonly (readonly TokenId[])[]): Promise<Float32Array[]> {
    this.decodes.push(inputs);
    await this.gate;
    if (this.failNext) {
      this.failNext = false;
      throw new Error("decode failed");
    }
    return inputs.map((tokens) =>
      Float32Array.of(
        tokens.reduce((sum, token) => sum + token, 0),
        tokens.length,
      ),
    );
  }
}

const tokens = (...ids: number[]) => ids as TokenId[];

test("inputs of concurrent requests share decodes, in arrival order, within sequences and tokens", async () => {
  const pooling = new FakePooling();
  let release: () => void = () => {};
  pooling.gate = new Promise((resolve) => {
    release = resolve;
  });
  const batcher = new EmbeddingBatcher(pooling, { maxSequences: 3, maxBatchTokens: 6 });
  const first = batcher.embed([tokens(1)]);
  // Queued while the first decode runs: packed together into the next ones.
  const second = batcher.embed([tokens(2, 2), tokens(3)]);
  const third = batcher.embed([tokens(4, 4, 4), tokens(5), tokens(6)]);
  assert.equal(batcher.numWaiting, 5, "the first decode took its input; five wait");
  release();
  assert.deepEqual(
    (await first).map((result) => result.embedding),
    [[1, 1]],
  );
  assert.deepEqual(
    (await second).map((result) => result.embedding),
    [
      [4, 2],
      [3, 1],
    ],
  );
  assert.deepEqual(
    (await third).map((result) => result.numTokens),
    [3, 1, 1],
  );
  assert.deepEqual(pooling.decodes, [[tokens(1)], [tokens(2, 2), tokens(3), tokens(4, 4, 4)], [tokens(5), tokens(6)]]);
  assert.equal(batcher.numDecodes, 3);
  assert.equal(batcher.numWaiting, 0);
});

test("a failed decode fails the requests in it, and the next requests are served", async () => {
  const pooling = new FakePooling();
  const batcher = new EmbeddingBatcher(pooling, { maxSequences: 8, maxBatchTokens: 64 });
  pooling.failNext = true;
  await assert.rejects(batcher.embed([tokens(1), tokens(2)]), /decode failed/);
  assert.deepEqual((await batcher.embed([tokens(7)]))[0]?.embedding, [7, 1]);
});

test("an abort drops the request's waiting inputs and rejects it; inputs out of bounds are refused", async () => {
  const pooling = new FakePooling();
  let release: () => void = () => {};
  pooling.gate = new Promise((resolve) => {
    release = resolve;
  });
  const batcher = new EmbeddingBatcher(pooling, { maxSequences: 1, maxBatchTokens: 4 });
  const running = batcher.embed([tokens(1)]);
  const controller = new AbortController();
  const aborted = batcher.embed([tokens(2), tokens(3)], controller.signal);
  controller.abort(new Error("gone"));
  await assert.rejects(aborted, /gone/);
  release();
  await running;
  assert.deepEqual(pooling.decodes, [[tokens(1)]]);
  await assert.rejects(batcher.embed([tokens(1, 2, 3, 4, 5)]), RangeError);
  await assert.rejects(batcher.embed([tokens()]), RangeError);
});

test("a request that would pass the waiting limit is refused whole, and one alone is always taken", async () => {
  const pooling = new FakePooling();
  let release: () => void = () => {};
  pooling.gate = new Promise((resolve) => {
    release = resolve;
  });
  const batcher = new EmbeddingBatcher(pooling, { maxSequences: 1, maxBatchTokens: 4, maxWaitingInputs: 2 });
  const big = batcher.embed([tokens(1), tokens(2), tokens(3)]);
  await assert.rejects(batcher.embed([tokens(4)]), EmbeddingQueueFullError);
  release();
  assert.equal((await big).length, 3);
  assert.equal((await batcher.embed([tokens(5), tokens(6)])).length, 2);
});
