import assert from "node:assert/strict";
import { test } from "node:test";
import { type BlockHash, hashBlock, type KvBlock } from "../../../src/cache/block.ts";
import { KvCacheManager } from "../../../src/cache/kv-cache-manager.ts";
import type { RequestId, TokenId } from "../../../src/engine/ids.ts";
import { asRequestId, asTokenId, asTokenIds } from "../../helpers/ids.ts";
import { mulberry32 } from "../../helpers/mulberry32.ts";

/** Runs `mutate`, then checks every pool and request invariant. */
function checked<T>(manager: KvCacheManager, mutate: () => T): T {
  const result = mutate();
  manager.checkInvariants();
  return result;
}

function snapshot(manager: KvCacheManager): unknown {
  return { stats: manager.stats(), blocks: manager.blockStates(), free: manager.freeBlockIds() };
}

interface SimRequest {
  /** Prompt, outputs and (while a step runs) nothing else: drafts are added only once accepted. */
  tokens: TokenId[];
  readonly numPromptTokens: number;
  readonly maxNumTokens: number;
  numComputedTokens: number;
}

interface RandomRunOptions {
  readonly seed: number;
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly enablePrefixCaching: boolean;
  readonly numOperations: number;
}

interface RandomRunCounts {
  admitted: number;
  prefixHitTokens: number;
  failedAllocations: number;
  evictions: number;
}

/**
 * Drives the manager the way a scheduler and engine would, and plays the engine's KV cells as well: `cells[id]`
 * is what block `id`'s cells hold. A prefix hit must find exactly the prompt's tokens there, and a step may only
 * write into blocks its request holds alone.
 */
function runRandomOperations(options: RandomRunOptions): RandomRunCounts {
  const random = mulberry32(options.seed);
  const int = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
  /** A token of an 8-token vocabulary. */
  const token = (): TokenId => asTokenId(int(0, 7));
  const { blockSize } = options;
  const counts: RandomRunCounts = { admitted: 0, prefixHitTokens: 0, failedAllocations: 0, evictions: 0 };
  const cells: number[][] = Array.from({ length: options.numBlocks }, () => []);
  const manager = new KvCacheManager({
    numBlocks: options.numBlocks,
    blockSize,
    enablePrefixCaching: options.enablePrefixCaching,
    onEvict: (block, hash) => {
      assert.equal(block.refCount, 0);
      assert.equal(block.hash, null);
      assert.notEqual(hash, null);
      counts.evictions += 1;
      cells[block.id] = [];
    },
  });
  manager.checkInvariants();
  // Shared prompt heads with a small vocabulary, so prefixes and identical blocks recur.
  const heads = Array.from({ length: 4 }, () => Array.from({ length: 40 }, () => token()));
  const requests = new Map<RequestId, SimRequest>();
  let nextRequestId = 0;

  const writeCells = (requestId: RequestId, tokens: readonly number[], from: number, to: number): void => {
    const blocks = manager.blocksOf(requestId);
    for (let position = from; position < to; position++) {
      const block = blocks[Math.floor(position / blockSize)] as KvBlock;
      assert.equal(block.refCount, 1, `position ${position} of ${requestId} lands in a shared block ${block.id}`);
      (cells[block.id] as number[])[position % blockSize] = tokens[position] as number;
    }
  };
  /** Every block is handed out by allocateSlots before it can be cached, so this ends up knowing all cached ones. */
  const seenBlocks = new Map<number, KvBlock>();
  const forgetCells = (blocks: readonly KvBlock[]): void => {
    for (const block of blocks) {
      cells[block.id] = [];
      seenBlocks.set(block.id, block);
    }
  };
  const finish = (requestId: RequestId): void => {
    checked(manager, () => manager.free(requestId));
    requests.delete(requestId);
  };

  const admit = (): void => {
    const head = heads[int(0, heads.length - 1)] as TokenId[];
    const prompt = [...head.slice(0, int(0, head.length)), ...Array.from({ length: int(1, 30) }, () => token())];
    const prefix = manager.findCachedPrefix(prompt);
    assert.ok(prefix.numTokens <= prompt.length - 1 && prefix.numTokens % blockSize === 0);
    let parent: BlockHash | null = null;
    prefix.blocks.forEach((block, index) => {
      const blockTokens = prompt.slice(index * blockSize, (index + 1) * blockSize);
      parent = hashBlock(parent, blockTokens);
      assert.equal(block.hash, parent);
      assert.deepEqual(cells[block.id], blockTokens, `prefix block ${block.id} holds the prompt's tokens`);
    });
    const numNewTokens = int(1, prompt.length - prefix.numTokens);
    const requestId = asRequestId(`r${nextRequestId++}`);
    const before = snapshot(manager);
    const newBlocks = checked(manager, () => manager.allocateSlots(requestId, { numNewTokens, cachedPrefix: prefix }));
    if (newBlocks === null) {
      counts.failedAllocations += 1;
      assert.deepEqual(snapshot(manager), before);
      assert.equal(manager.hasRequest(requestId), false);
      return;
    }
    counts.admitted += 1;
    counts.prefixHitTokens += prefix.numTokens;
    manager.recordPrefixQuery(prompt.length, prefix.numTokens);
    forgetCells(newBlocks);
    const numComputedTokens = prefix.numTokens + numNewTokens;
    writeCells(requestId, prompt, prefix.numTokens, numComputedTokens);
    checked(manager, () => manager.commitTokens(requestId, prompt, numComputedTokens));
    const tokens = numComputedTokens === prompt.length ? [...prompt, token()] : [...prompt];
    const maxNumTokens = prompt.length + int(1, 60);
    requests.set(requestId, { tokens, numPromptTokens: prompt.length, maxNumTokens, numComputedTokens });
  };

  const step = (requestId: RequestId, request: SimRequest): void => {
    const isPrefill = request.numComputedTokens < request.numPromptTokens;
    const numUncomputed = request.tokens.length - request.numComputedTokens;
    const numDrafts = isPrefill ? 0 : int(0, 3);
    const numPromptLeft = request.numPromptTokens - request.numComputedTokens;
    const numNewTokens = isPrefill ? int(1, numPromptLeft) : numUncomputed + numDrafts;
    const before = snapshot(manager);
    const newBlocks = checked(manager, () => manager.allocateSlots(requestId, { numNewTokens }));
    if (newBlocks === null) {
      counts.failedAllocations += 1;
      assert.deepEqual(snapshot(manager), before);
      if (random() < 0.5) finish(requestId); // preempted
      return;
    }
    forgetCells(newBlocks);
    const numAccepted = int(0, numDrafts);
    const tokens = [...request.tokens, ...Array.from({ length: numAccepted }, () => token())];
    const numComputedTokens = request.numComputedTokens + (isPrefill ? numNewTokens : numUncomputed + numAccepted);
    writeCells(requestId, tokens, request.numComputedTokens, numComputedTokens);
    checked(manager, () => manager.commitTokens(requestId, tokens, numComputedTokens));
    if (numComputedTokens >= request.numPromptTokens) tokens.push(token());
    request.tokens = tokens;
    request.numComputedTokens = numComputedTokens;
    if (tokens.length >= request.maxNumTokens) finish(requestId);
  };

  for (let operation = 0; operation < options.numOperations; operation++) {
    const running = [...requests.entries()];
    const roll = random();
    if (running.length === 0 || (roll < 0.25 && running.length < 12)) {
      admit();
    } else if (roll < 0.9) {
      const [requestId, request] = running[int(0, running.length - 1)] as [RequestId, SimRequest];
      step(requestId, request);
    } else if (roll < 0.97) {
      finish((running[int(0, running.length - 1)] as [RequestId, SimRequest])[0]); // aborted
    } else if (roll < 0.99) {
      const cachedFree = manager.blockStates().filter((block) => block.refCount === 0 && block.hash !== null);
      const victim = cachedFree[int(0, cachedFree.length - 1)];
      const block = victim === undefined ? undefined : seenBlocks.get(victim.id);
      if (block !== undefined) {
        // The caller of uncache owns the cells behind the block, as the engine would.
        assert.equal(
          checked(manager, () => manager.uncache(block)),
          true,
        );
        cells[block.id] = [];
      }
    } else {
      const isAnyCachedInUse = manager.blockStates().some((block) => block.refCount > 0 && block.hash !== null);
      assert.equal(
        checked(manager, () => manager.resetPrefixCache()),
        !isAnyCachedInUse,
      );
    }
    for (const [requestId, request] of requests) {
      assert.equal(manager.numComputedTokens(requestId), request.numComputedTokens);
    }
    const { numUsedBlocks, numCachedFreeBlocks } = manager.stats();
    assert.ok(numUsedBlocks + numCachedFreeBlocks <= options.numBlocks);
  }

  for (const requestId of [...requests.keys()]) finish(requestId);
  const stats = manager.stats();
  assert.equal(stats.numFreeBlocks, options.numBlocks);
  assert.equal(stats.numUsedBlocks, 0);
  assert.equal(stats.usage, 0);
  assert.ok(manager.blockStates().every((block) => block.refCount === 0));
  return counts;
}

const CONFIGS: readonly Omit<RandomRunOptions, "numOperations">[] = [
  { seed: 1, numBlocks: 48, blockSize: 4, enablePrefixCaching: true },
  { seed: 2, numBlocks: 20, blockSize: 4, enablePrefixCaching: true },
  { seed: 3, numBlocks: 64, blockSize: 2, enablePrefixCaching: true },
  { seed: 4, numBlocks: 16, blockSize: 16, enablePrefixCaching: true },
  { seed: 5, numBlocks: 32, blockSize: 4, enablePrefixCaching: false },
];

for (const config of CONFIGS) {
  const caching = config.enablePrefixCaching ? "on" : "off";
  const name = `${config.numBlocks} blocks of ${config.blockSize}, prefix caching ${caching}`;
  test(`thousands of random admissions, steps, preemptions and aborts keep every invariant (${name})`, () => {
    const counts = runRandomOperations({ ...config, numOperations: 4000 });
    assert.ok(counts.admitted > 100, `admitted ${counts.admitted}`);
    assert.ok(counts.failedAllocations > 0, "the pool ran short at least once");
    if (config.enablePrefixCaching) {
      assert.ok(counts.prefixHitTokens > 0, "some prompts reused cached blocks");
      assert.ok(counts.evictions > 0, "some cached blocks were evicted");
    } else {
      assert.equal(counts.prefixHitTokens, 0);
      assert.equal(counts.evictions, 0);
    }
  });
}

test("requests grow until the pool runs out, and never beyond its cells", () => {
  const numBlocks = 12;
  const blockSize = 4;
  const manager = new KvCacheManager({ numBlocks, blockSize, enablePrefixCaching: true });
  const requestIds = ["a", "b", "c", "d", "e"].map(asRequestId);
  const tokensOf = new Map<RequestId, TokenId[]>();
  for (const [index, requestId] of requestIds.entries()) {
    const prompt = asTokenIds(Array.from({ length: 6 }, (_, position) => 100 * index + position));
    assert.notEqual(
      checked(manager, () => manager.allocateSlots(requestId, { numNewTokens: prompt.length })),
      null,
    );
    checked(manager, () => manager.commitTokens(requestId, prompt, prompt.length));
    tokensOf.set(requestId, prompt);
  }
  let numSteps = 0;
  for (;;) {
    const requestId = requestIds[numSteps % requestIds.length] as RequestId;
    const tokens = tokensOf.get(requestId) as TokenId[];
    const numFreeBefore = manager.stats().numFreeBlocks;
    const numBlocksNeeded = manager.numBlocksNeeded(tokens.length + 1) - manager.blocksOf(requestId).length;
    const before = snapshot(manager);
    const newBlocks = checked(manager, () => manager.allocateSlots(requestId, { numNewTokens: 1 }));
    const { numUsedBlocks } = manager.stats();
    assert.ok(numUsedBlocks * blockSize <= numBlocks * blockSize);
    const numComputedTokens = requestIds.reduce((sum, id) => sum + manager.numComputedTokens(id), 0);
    assert.ok(numComputedTokens <= numUsedBlocks * blockSize, "every computed token has a cell");
    if (newBlocks === null) {
      assert.ok(numFreeBefore < numBlocksNeeded, `${numFreeBefore} free blocks, ${numBlocksNeeded} needed`);
      assert.equal(numFreeBefore, 0);
      assert.deepEqual(snapshot(manager), before);
      break;
    }
    tokens.push(asTokenId(7));
    checked(manager, () => manager.commitTokens(requestId, tokens, tokens.length));
    numSteps += 1;
  }
  assert.equal(manager.stats().usage, 1);
  // 5 prompts of 6 tokens hold 10 blocks; 10 decode steps fill them, a and b take the last 2, c finds none.
  assert.equal(numSteps, 12);
  for (const requestId of requestIds) checked(manager, () => manager.free(requestId));
  assert.equal(manager.stats().numFreeBlocks, numBlocks);
});
