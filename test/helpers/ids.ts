/**
 * Test literals as the branded ids of src/engine/ids.ts: tests write plain strings and numbers, the code under test
 * gets ids.
 */
import type { RequestId, TokenId } from "../../src/engine/ids.ts";

export function asRequestId(value: string): RequestId {
  return value as RequestId;
}

export function tokenIds(...values: number[]): TokenId[] {
  return values as TokenId[];
}

/** `tokenIds` for an array already built (spreading a long one into arguments would overflow the call stack). */
export function asTokenIds(values: number[]): TokenId[] {
  return values as TokenId[];
}

export function asTokenId(value: number): TokenId {
  return value as TokenId;
}
