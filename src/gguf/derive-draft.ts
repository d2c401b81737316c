/**
 * Derives a draft model for speculative decoding from a GGUF model: its first N transformer blocks, with its
 * tokenizer, embeddings and output head untouched, so the draft proposes tokens in the target's vocabulary.
 * Nothing is retrained: the draft is the target with its later blocks cut off, so how often its guesses are
 * accepted has to be measured.
 *
 * Metadata is copied as read, except `<arch>.block_count` and `general.name`; before writing, the source's metadata
 * is re-encoded and compared with its bytes on disk, so the copy is proven byte for byte (tokenizer arrays
 * included). Tensor data is streamed in raw, whatever its ggml type.
 */
import { open, realpath, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { assertMetadataRoundTrips, derivedMetadata, stringKv } from "./derived-metadata.ts";
import { ggmlTensorBytes, ggmlTypeInfo } from "./ggml-types.ts";
import type { GgufKv } from "./gguf-kv.ts";
import { type GgufRawTensor, GgufRawWriter } from "./gguf-raw-writer.ts";
import { type GgufHeader, type GgufTensorInfo, readGgufHeader, readGgufTensorChunks } from "./gguf-reader.ts";

export interface DeriveDraftOptions {
  /** Transformer blocks to keep, from the input side: `blk.0` … `blk.<keepLayers - 1>`. 1 to the source's count. */
  keepLayers: number;
  /** Called after each chunk with the bytes written so far and the size the file will have. */
  onProgress?: (writtenBytes: number, totalBytes: number) => void;
}

export interface DeriveDraftResult {
  /** `<arch>.block_count` of the source. */
  sourceLayers: number;
  keptLayers: number;
  sourceBytes: number;
  outBytes: number;
  /** Tensors in the draft. */
  numTensors: number;
}

/** A source file this cannot derive from: not a GGUF, or one whose layers cannot simply be cut off. */
export class DeriveDraftError extends Error {
  override readonly name = "DeriveDraftError";
  readonly code = "PAGODA_ERR_DERIVE_DRAFT";
}

const BLOCK_TENSOR = /^blk\.(\d+)\./;

const fail = (message: string): Error => new DeriveDraftError(message);

/** The source's block count KV; its type is kept when it is rewritten. */
function blockCountKv(metadata: readonly GgufKv[]): { key: string; sourceLayers: number } {
  const architecture = stringKv(metadata, "general.architecture", fail);
  if (architecture === null) throw new DeriveDraftError("general.architecture is missing");
  const key = `${architecture}.block_count`;
  const kv = metadata.find((entry) => entry.key === key);
  const value = kv === undefined || kv.type === "array" ? null : kv.value;
  if (kv === undefined || (typeof value !== "number" && typeof value !== "bigint"))
    throw new DeriveDraftError(`${key} is missing or not an integer`);
  const sourceLayers = Number(value);
  if (!Number.isSafeInteger(sourceLayers) || sourceLayers < 1)
    throw new DeriveDraftError(`${key} must be a positive integer, got ${value}`);
  // llama.cpp reads some hyperparameters as one value per layer (head counts of OpenELM or hybrid models, …);
  // cutting those arrays down would be guessing which arrays are per layer, so refuse instead.
  const perLayer = metadata.filter(
    (entry) =>
      entry.key.startsWith(`${architecture}.`) && entry.type === "array" && entry.value.length === sourceLayers,
  );
  if (perLayer.length > 0)
    throw new DeriveDraftError(
      `per-layer metadata arrays are not supported: ${perLayer.map((entry) => entry.key).join(", ")}`,
    );
  return { key, sourceLayers };
}

function draftMetadata(
  source: GgufHeader,
  blockCountKey: string,
  keepLayers: number,
  sourceLayers: number,
  sourcePath: string,
): GgufKv[] {
  const nameSuffix = ` (first ${keepLayers} of ${sourceLayers} blocks)`;
  return derivedMetadata(source.metadata, { key: blockCountKey, value: keepLayers, nameSuffix, sourcePath }, fail);
}

/** Bytes of each source tensor, checked against the file: inside the data section, no two overlapping. */
function sourceTensorBytes(source: GgufHeader, fileBytes: number): Map<GgufTensorInfo, number> {
  const sizes = new Map<GgufTensorInfo, number>();
  for (const tensor of source.tensors) {
    try {
      sizes.set(tensor, ggmlTensorBytes(ggmlTypeInfo(tensor.ggmlType), tensor.dims));
    } catch (error) {
      throw new DeriveDraftError(`tensor ${tensor.name}: ${(error as Error).message}`, { cause: error });
    }
  }
  const byOffset = [...source.tensors].sort((a, b) => a.offset - b.offset);
  byOffset.forEach((tensor, index) => {
    const end = tensor.offset + sizes.get(tensor)!;
    const limit = index + 1 < byOffset.length ? byOffset[index + 1]!.offset : fileBytes - source.dataOffset;
    if (end > limit)
      throw new DeriveDraftError(
        `tensor ${tensor.name} runs past ${
          index + 1 < byOffset.length ? `the start of ${byOffset[index + 1]!.name}` : "the end of the file"
        }: truncated or corrupt file`,
      );
  });
  return sizes;
}

async function isSameFile(sourcePath: string, outPath: string): Promise<boolean> {
  const source = await realpath(sourcePath);
  const out = await realpath(outPath).catch(() => resolve(outPath));
  return source === out;
}

/**
 * Writes to `outPath` a GGUF with the first `keepLayers` transformer blocks of `sourcePath` and everything outside
 * the blocks (embeddings, output norm and head, rope factors …), streaming tensor data so memory stays flat.
 */
export async function deriveDraftModel(
  sourcePath: string,
  outPath: string,
  options: DeriveDraftOptions,
): Promise<DeriveDraftResult> {
  const { keepLayers } = options;
  const source = await readGgufHeader(sourcePath);
  const { key: blockCountKey, sourceLayers } = blockCountKv(source.metadata);
  if (!Number.isSafeInteger(keepLayers) || keepLayers < 1 || keepLayers > sourceLayers)
    throw new RangeError(
      `keepLayers must be an integer from 1 to ${sourceLayers} (the source's blocks), got ${keepLayers}`,
    );
  if (await isSameFile(sourcePath, outPath)) throw new DeriveDraftError("the draft cannot overwrite its source");
  const sourceBytes = (await stat(sourcePath)).size;
  const sizes = sourceTensorBytes(source, sourceBytes);

  const handle = await open(sourcePath, "r");
  try {
    await assertMetadataRoundTrips(handle, source, fail);
    const tensors: GgufRawTensor[] = source.tensors
      .filter((tensor) => {
        const block = BLOCK_TENSOR.exec(tensor.name);
        return block === null || Number(block[1]) < keepLayers;
      })
      .map((tensor) => ({
        name: tensor.name,
        dims: tensor.dims,
        ggmlType: tensor.ggmlType,
        byteLength: sizes.get(tensor)!,
        data: () => readGgufTensorChunks(handle, source, tensor, sizes.get(tensor)!),
      }));
    const writer = new GgufRawWriter({
      metadata: draftMetadata(source, blockCountKey, keepLayers, sourceLayers, sourcePath),
      tensors,
    });
    const onProgress = options.onProgress;
    await writer.writeFile(outPath, onProgress && ((writtenBytes) => onProgress(writtenBytes, writer.totalSize)));
    return {
      sourceLayers,
      keptLayers: keepLayers,
      sourceBytes,
      outBytes: writer.totalSize,
      numTensors: tensors.length,
    };
  } finally {
    await handle.close();
  }
}
