/**
 * Test literals as the branded ids of src/engine/ids.ts: tests write plain strings and numbers, the code under test
 * gets ids.
 */
import type { RequestId } from "../../src/engine/ids.ts";

export function asRequestId(value: string): RequestId {
  return value as RequestId;
}
