/**
 * Metadata of a model derived from another GGUF file (a draft with fewer blocks, a target with a wider
 * feed-forward): every key copied as read except one integer hyperparameter and the model's name.
 */
import type { FileHandle } from "node:fs/promises";
import { basename, extname } from "node:path";
import type { GgufKv } from "./gguf-kv.ts";
import { encodeGgufMetadata, GGUF_METADATA_OFFSET } from "./gguf-layout.ts";
import type { GgufHeader } from "./gguf-reader.ts";

/** A string KV's value, null when absent; `fail` builds the error for a KV of another type. */
export function stringKv(metadata: readonly GgufKv[], key: string, fail: (message: string) => Error): string | null {
  const kv = metadata.find((entry) => entry.key === key);
  if (kv === undefined) return null;
  if (kv.type !== "string") throw fail(`${key} must be a string, not a ${kv.type}`);
  return kv.value;
}

/**
 * The source's metadata with `key` set to `value` (keeping the KV's integer type) and `general.name` suffixed with
 * `nameSuffix` (a name from the file's when the source has none).
 */
export function derivedMetadata(
  metadata: readonly GgufKv[],
  change: { readonly key: string; readonly value: number; readonly nameSuffix: string; readonly sourcePath: string },
  fail: (message: string) => Error,
): GgufKv[] {
  const derived = metadata.map((kv): GgufKv => {
    if (kv.key === change.key) {
      return kv.type === "uint64" || kv.type === "int64"
        ? { ...kv, value: BigInt(change.value) }
        : { ...(kv as Extract<GgufKv, { value: number }>), value: change.value };
    }
    if (kv.key === "general.name" && kv.type === "string") return { ...kv, value: kv.value + change.nameSuffix };
    return kv;
  });
  if (stringKv(metadata, "general.name", fail) === null) {
    derived.push({
      key: "general.name",
      type: "string",
      value: basename(change.sourcePath, extname(change.sourcePath)) + change.nameSuffix,
    });
  }
  return derived;
}

/**
 * Throws `fail(…)` unless the source's metadata as read re-encodes to exactly its bytes on disk, which proves that
 * the copy is byte for byte (tokenizer arrays included). Invalid UTF-8 or a NaN payload would not survive.
 */
export async function assertMetadataRoundTrips(
  handle: FileHandle,
  source: GgufHeader,
  fail: (message: string) => Error,
): Promise<void> {
  const encoded = encodeGgufMetadata(source.metadata);
  const onDisk = Buffer.alloc(encoded.length);
  const { bytesRead } = await handle.read(onDisk, 0, onDisk.length, GGUF_METADATA_OFFSET);
  if (bytesRead !== onDisk.length || !onDisk.equals(encoded))
    throw fail(
      "the source's metadata does not re-encode byte for byte (a string that is not valid UTF-8, or a NaN payload), " +
        "so it cannot be copied exactly",
    );
}
