/**
 * One KV block: `blockSize` consecutive token positions of one request's KV cache, and the hash-chain key that
 * lets a later request with the same leading tokens reuse it.
 *
 * A block's fields belong to `BlockPool` and `FreeBlockQueue`; everything else reads them and never writes.
 */
import { createHash } from "node:crypto";
import type { TokenId } from "../engine/ids.ts";

export type BlockId = number & { readonly __brand: "BlockId" };

/** Hex sha256 of a parent hash and one full block's token ids; see `hashBlock`. */
export type BlockHash = string & { readonly __brand: "BlockHash" };

export class KvBlock {
  readonly id: BlockId;
  /** Requests holding this block. At 0 the block is in the free queue, cached (has a hash) or not. */
  refCount = 0;
  /** Set while the block is in the pool's prefix map; kept after the block is freed until it is reused. */
  hash: BlockHash | null = null;
  /** Free-queue links, intrusive so removing a cached block on a prefix hit is O(1). Null off the queue. */
  prevFree: KvBlock | null = null;
  nextFree: KvBlock | null = null;

  constructor(id: BlockId) {
    this.id = id;
  }
}

/** Stands in for the parent of a request's first block. Being 64 hex digits like every other parent keeps the
 * hashed byte stream unambiguous: a parent is always exactly 64 bytes before the token bytes. */
const ROOT_PARENT = createHash("sha256").update("pagoda/kv-block-hash/v1").digest("hex");

const MAX_TOKEN_ID = 0xffff_ffff;

/**
 * The key of a full block: sha256 over its parent's hash (a fixed seed for the first block) and its token ids as
 * little-endian uint32 bytes. A key so names the whole prefix up to and including the block, which is what makes a
 * reused block valid: the same tokens at the same positions after the same history. Little-endian is spelled out
 * (not a platform-endian `Uint32Array`) so keys agree across machines.
 */
export function hashBlock(parent: BlockHash | null, tokens: readonly TokenId[]): BlockHash {
  const bytes = Buffer.allocUnsafe(tokens.length * 4);
  tokens.forEach((token, index) => {
    if (!Number.isInteger(token) || token < 0 || token > MAX_TOKEN_ID) {
      throw new RangeError(`token ids are uint32 integers; got ${token} at index ${index}`);
    }
    bytes.writeUInt32LE(token, index * 4);
  });
  return createHash("sha256")
    .update(parent ?? ROOT_PARENT, "latin1")
    .update(bytes)
    .digest("hex") as BlockHash;
}
