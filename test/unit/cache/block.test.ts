import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { hashBlock } from "../../../src/cache/block.ts";
import { tokenIds } from "../../helpers/ids.ts";

test("a block hash is a pinned sha256 value, so keys agree across processes and releases", () => {
  const root = hashBlock(null, tokenIds(1, 2, 3, 4));
  assert.equal(root, "b3cecb6d9dd534401a312f7e394566f81e2eee752e7e19b2ede44cee723b5893");
  assert.equal(
    hashBlock(root, tokenIds(5, 6, 7, 8)),
    "8199d0a1d84cee118e1fb9885186ce2448b7cf283bc00cd9ae89e108c35df46b",
  );
});

test("a block hash is sha256 over the 64-hex-digit parent and the token ids as little-endian uint32 bytes", () => {
  const parent = hashBlock(null, tokenIds(9));
  const bytes = Buffer.from([0x01, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x00, 0x00]);
  const expected = createHash("sha256").update(parent, "latin1").update(bytes).digest("hex");
  assert.equal(hashBlock(parent, tokenIds(1, 0xffff_ffff, 256)), expected);
});

test("the same tokens after the same parent give the same hash; a different parent or token gives another", () => {
  const first = hashBlock(null, tokenIds(10, 11, 12, 13));
  const other = hashBlock(null, tokenIds(10, 11, 12, 14));
  assert.equal(hashBlock(null, tokenIds(10, 11, 12, 13)), first);
  assert.notEqual(other, first);
  assert.equal(hashBlock(first, tokenIds(20, 21, 22, 23)), hashBlock(first, tokenIds(20, 21, 22, 23)));
  assert.notEqual(hashBlock(first, tokenIds(20, 21, 22, 23)), hashBlock(other, tokenIds(20, 21, 22, 23)));
  assert.notEqual(
    hashBlock(first, tokenIds(20, 21, 22, 23)),
    hashBlock(null, tokenIds(20, 21, 22, 23)),
    "the root is not a parent",
  );
});

test("token ids that are not uint32 integers are rejected", () => {
  assert.throws(() => hashBlock(null, tokenIds(1, -1)), RangeError);
  assert.throws(() => hashBlock(null, tokenIds(1.5)), RangeError);
  assert.throws(() => hashBlock(null, tokenIds(2 ** 32)), RangeError);
});
