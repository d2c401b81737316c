import assert from "node:assert/strict";
import { test } from "node:test";
import { KvCacheManager } from "../../../src/cache/kv-cache-manager.ts";
import { asRequestId, asTokenIds } from "../../helpers/ids.ts";

const r = asRequestId("r");

test("truncate rolls a request back to fewer tokens and frees the blocks past them, never cached ones", () => {
  const kv = new KvCacheManager({ numBlocks: 8, blockSize: 4, enablePrefixCaching: true });
  const tokens = asTokenIds(Array.from({ length: 14 }, (_, index) => 10 + index));
  assert.ok(kv.allocateSlots(r, { numNewTokens: 14 }) !== null);
  kv.commitTokens(r, tokens.slice(0, 6), 6);
  kv.checkInvariants();
  assert.equal(kv.blocksOf(r).length, 4);
  assert.throws(() => kv.truncate(r, 3), /would drop cached blocks/, "block 0 (tokens 0-3) is cached");
  kv.truncate(r, 5);
  kv.checkInvariants();
  assert.equal(kv.blocksOf(r).length, 2);
  assert.equal(kv.numComputedTokens(r), 5);
  assert.equal(kv.stats().numUsedBlocks, 2);
  assert.throws(() => kv.truncate(r, 6), RangeError, "truncate never grows");
  kv.free(r);
  kv.checkInvariants();
  assert.equal(kv.stats().numUsedBlocks, 0);
});
