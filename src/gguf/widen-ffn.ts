/**
 * Derives a wider target model for speculative-decoding benchmarks: the source model with extra feed-forward hidden
 * units in every block. The source's weights are kept exactly; the extra rows of `ffn_gate` and `ffn_up` are seeded
 * random values on the scale of the source rows, and the extra columns of `ffn_down` are those values' scale times
 * `perturbation`. So the target computes the source's output plus a perturbation that `perturbation` controls
 * (none at 0), while every step costs the wider feed-forward. The source then serves as a draft that agrees with
 * the target most of the time.
 *
 * Metadata is copied as read except `<arch>.feed_forward_length` and `general.name`, after proving the source's
 * metadata re-encodes byte for byte (as derive-draft.ts does). Tensors other than the three FFN matrices are copied
 * raw. Only F32 and F16 FFN matrices can be widened; quantized ones are refused.
 */
import { type FileHandle, open, realpath, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { assertMetadataRoundTrips, derivedMetadata, stringKv } from "./derived-metadata.ts";
import { f16BitsToNumber, float32ToF16Bits } from "./float16.ts";
import { GGML_TYPE_ID, ggmlTensorBytes, ggmlTypeInfo } from "./ggml-types.ts";
import type { GgufKv } from "./gguf-kv.ts";
import { type GgufRawTensor, GgufRawWriter } from "./gguf-raw-writer.ts";
import { type GgufHeader, type GgufTensorInfo, readGgufHeader, readGgufTensorChunks } from "./gguf-reader.ts";
import { syntheticWeights } from "./synthetic-weights.ts";

export interface WidenFeedForwardOptions {
  /** The target's FFN hidden size (`n_ff`); larger than the source's. */
  feedForwardLength: number;
  /**
   * Scale of the extra `ffn_down` columns relative to the RMS of the source's `ffn_down`; 0 makes them exact zeros,
   * so the extra units add nothing. At least 0. Defaults to 0.02.
   */
  perturbation?: number;
  /** PRNG seed of the extra values (low 32 bits are used). Defaults to 0. */
  seed?: number;
  /** Called after each chunk with the bytes written so far and the size the file will have. */
  onProgress?: (writtenBytes: number, totalBytes: number) => void;
}

export interface WidenFeedForwardResult {
  /** `<arch>.feed_forward_length` of the source. */
  sourceFeedForward: number;
  feedForwardLength: number;
  sourceBytes: number;
  outBytes: number;
}

/** A source this cannot widen: not a GGUF, a missing or per-layer FFN size, MoE, biases, quantized FFN matrices. */
export class WidenFeedForwardError extends Error {
  override readonly name = "WidenFeedForwardError";
  readonly code = "PAGODA_ERR_WIDEN_FFN";
}

export const DEFAULT_PERTURBATION = 0.02;

/** Source rows read at once when widening `ffn_down`: a few MB whatever the model. */
const CHUNK_BYTES = 4 * 1024 * 1024;
/** Zeros per chunk for a perturbation of 0, in whole rows like syntheticWeights' chunks. */
const ZERO_CHUNK_VALUES = 1 << 20;
const WIDENED = /^blk\.\d+\.ffn_(gate|up|down)\.weight$/;
const BYTES_PER_VALUE: Readonly<Record<number, number>> = { [GGML_TYPE_ID.F32]: 4, [GGML_TYPE_ID.F16]: 2 };

const fail = (message: string): Error => new WidenFeedForwardError(message);

function integerKv(metadata: readonly GgufKv[], key: string): number | null {
  const kv = metadata.find((entry) => entry.key === key);
  if (kv === undefined) return null;
  if (kv.type === "array")
    throw new WidenFeedForwardError(
      `${key} is a per-layer array; only one feed-forward size for all blocks is supported`,
    );
  const value = Number(kv.value);
  if (!Number.isSafeInteger(value) || value < 0)
    throw new WidenFeedForwardError(`${key} must be a non-negative integer, got ${String(kv.value)}`);
  return value;
}

function targetMetadata(
  source: GgufHeader,
  key: string,
  feedForwardLength: number,
  perturbation: number,
  sourcePath: string,
): GgufKv[] {
  const nameSuffix = ` (feed-forward widened to ${feedForwardLength}, perturbation ${perturbation})`;
  return derivedMetadata(source.metadata, { key, value: feedForwardLength, nameSuffix, sourcePath }, fail);
}

/** Throws unless every FFN matrix is an F32/F16 [n_embd, n_ff] or [n_ff, n_embd] and nothing else has n_ff units. */
function checkFeedForward(source: GgufHeader, architecture: string, sourceFeedForward: number): void {
  if ((integerKv(source.metadata, `${architecture}.expert_count`) ?? 0) > 0)
    throw new WidenFeedForwardError("mixture-of-experts models are not supported");
  const embeddingLength = integerKv(source.metadata, `${architecture}.embedding_length`);
  if (embeddingLength === null) throw new WidenFeedForwardError(`${architecture}.embedding_length is missing`);
  for (const tensor of source.tensors) {
    const kind = WIDENED.exec(tensor.name)?.[1];
    if (kind === undefined) {
      if (/^blk\.\d+\.ffn_/.test(tensor.name) && tensor.dims.includes(sourceFeedForward))
        throw new WidenFeedForwardError(
          `tensor ${tensor.name} has ${sourceFeedForward} feed-forward units ` +
            "but is not a gate, up or down matrix (a bias or an expert tensor): not supported",
        );
      continue;
    }
    const type = ggmlTypeInfo(tensor.ggmlType).name;
    if (BYTES_PER_VALUE[tensor.ggmlType] === undefined)
      throw new WidenFeedForwardError(
        `tensor ${tensor.name} is ${type}; only F32 and F16 feed-forward ` +
          "matrices can be widened (quantized ones would need re-quantizing)",
      );
    const expected = kind === "down" ? [sourceFeedForward, embeddingLength] : [embeddingLength, sourceFeedForward];
    if (tensor.dims.length !== 2 || tensor.dims[0] !== expected[0] || tensor.dims[1] !== expected[1])
      throw new WidenFeedForwardError(
        `tensor ${tensor.name} has shape [${tensor.dims.join(", ")}], expected [${expected.join(", ")}]`,
      );
  }
}

function decodeValue(type: number, bytes: Buffer, index: number): number {
  return type === GGML_TYPE_ID.F16 ? f16BitsToNumber(bytes.readUInt16LE(index * 2)) : bytes.readFloatLE(index * 4);
}

/** Little-endian F32 or F16 bytes of `values`. */
function encodeValues(type: number, values: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(values.length * BYTES_PER_VALUE[type]!);
  for (let i = 0; i < values.length; i++) {
    if (type === GGML_TYPE_ID.F16) out.writeUInt16LE(float32ToF16Bits(values[i]!), i * 2);
    else out.writeFloatLE(values[i]!, i * 4);
  }
  return out;
}

/** Root mean square of a tensor's values, decoded in one streaming pass. */
async function tensorRms(
  handle: FileHandle,
  source: GgufHeader,
  tensor: GgufTensorInfo,
  byteLength: number,
): Promise<number> {
  let sumOfSquares = 0;
  let count = 0;
  const bytesPerValue = BYTES_PER_VALUE[tensor.ggmlType]!;
  for await (const chunk of readGgufTensorChunks(handle, source, tensor, byteLength)) {
    for (let i = 0; i < chunk.length / bytesPerValue; i++) {
      const value = decodeValue(tensor.ggmlType, chunk, i);
      sumOfSquares += value * value;
    }
    count += chunk.length / bytesPerValue;
  }
  const rms = Math.sqrt(sumOfSquares / Math.max(1, count));
  if (!Number.isFinite(rms)) throw new WidenFeedForwardError(`tensor ${tensor.name} holds non-finite values`);
  return rms;
}

/** Random extra values, `rowLength` per row, or exact zeros when `std` is 0. */
function* extraValues(
  name: string,
  count: number,
  rowLength: number,
  seed: number,
  std: number,
): Generator<Float32Array> {
  if (std === 0) {
    const chunkValues = Math.max(1, Math.floor(ZERO_CHUNK_VALUES / rowLength)) * rowLength;
    for (let start = 0; start < count; start += chunkValues)
      yield new Float32Array(Math.min(chunkValues, count - start));
    return;
  }
  yield* syntheticWeights(name, count, rowLength, seed, std);
}

interface WidenPlan {
  handle: FileHandle;
  source: GgufHeader;
  sourceFeedForward: number;
  feedForwardLength: number;
  perturbation: number;
  seed: number;
}

/** Gate/up: the source's n_ff rows, then `extra` new rows of n_embd values at the source's RMS. */
async function* widenRows(plan: WidenPlan, tensor: GgufTensorInfo, byteLength: number): AsyncGenerator<Buffer> {
  const { handle, source, sourceFeedForward, feedForwardLength, seed } = plan;
  const rms = await tensorRms(handle, source, tensor, byteLength);
  yield* readGgufTensorChunks(handle, source, tensor, byteLength);
  const rowLength = tensor.dims[0]!;
  for (const values of extraValues(
    tensor.name,
    (feedForwardLength - sourceFeedForward) * rowLength,
    rowLength,
    seed,
    rms,
  ))
    yield encodeValues(tensor.ggmlType, values);
}

/** Down: each of the n_embd rows is the source row followed by `extra` new columns at `perturbation` × RMS. */
async function* widenColumns(plan: WidenPlan, tensor: GgufTensorInfo, byteLength: number): AsyncGenerator<Buffer> {
  const { handle, source, sourceFeedForward, feedForwardLength, perturbation, seed } = plan;
  const std = perturbation === 0 ? 0 : perturbation * (await tensorRms(handle, source, tensor, byteLength));
  const extra = feedForwardLength - sourceFeedForward;
  const numRows = tensor.dims[1]!;
  const sourceRowBytes = byteLength / numRows;
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / sourceRowBytes));
  const extras = extraValues(tensor.name, numRows * extra, extra, seed, std);
  let pending: Float32Array = new Float32Array(0);
  let pendingAt = 0;
  for await (const chunk of readGgufTensorChunks(handle, source, tensor, byteLength, rowsPerChunk * sourceRowBytes)) {
    for (let row = 0; row < chunk.length / sourceRowBytes; row++) {
      yield chunk.subarray(row * sourceRowBytes, (row + 1) * sourceRowBytes);
      // Generator chunks hold whole rows of `extra` values, so a row never straddles two of them.
      if (pendingAt === pending.length) {
        pending = extras.next().value as Float32Array;
        pendingAt = 0;
      }
      yield encodeValues(tensor.ggmlType, pending.subarray(pendingAt, pendingAt + extra));
      pendingAt += extra;
    }
  }
}

/**
 * Writes to `outPath` the model at `sourcePath` with every block's feed-forward widened to `feedForwardLength`
 * hidden units; see the file comment for what the extra units compute. Streams, so memory stays flat.
 */
export async function widenFeedForward(
  sourcePath: string,
  outPath: string,
  options: WidenFeedForwardOptions,
): Promise<WidenFeedForwardResult> {
  const { feedForwardLength, perturbation = DEFAULT_PERTURBATION, seed = 0 } = options;
  if (!Number.isFinite(perturbation) || perturbation < 0)
    throw new RangeError(`perturbation must be a finite number of at least 0, got ${perturbation}`);
  const source = await readGgufHeader(sourcePath);
  const architecture = stringKv(source.metadata, "general.architecture", fail);
  if (architecture === null) throw new WidenFeedForwardError("general.architecture is missing");
  const key = `${architecture}.feed_forward_length`;
  const sourceFeedForward = integerKv(source.metadata, key);
  if (sourceFeedForward === null || sourceFeedForward < 1)
    throw new WidenFeedForwardError(`${key} is missing or not a positive integer`);
  if (!Number.isSafeInteger(feedForwardLength) || feedForwardLength <= sourceFeedForward)
    throw new RangeError(
      `feedForwardLength must be an integer above ${sourceFeedForward} (the source's), got ${feedForwardLength}`,
    );
  checkFeedForward(source, architecture, sourceFeedForward);
  const isSameFile = (await realpath(sourcePath)) === (await realpath(outPath).catch(() => resolve(outPath)));
  if (isSameFile) throw new WidenFeedForwardError("the target cannot overwrite its source");
  const sourceBytes = (await stat(sourcePath)).size;

  const handle = await open(sourcePath, "r");
  try {
    await assertMetadataRoundTrips(handle, source, fail);
    const plan: WidenPlan = { handle, source, sourceFeedForward, feedForwardLength, perturbation, seed: seed >>> 0 };
    const tensors = source.tensors.map((tensor): GgufRawTensor => {
      const byteLength = ggmlTensorBytes(ggmlTypeInfo(tensor.ggmlType), tensor.dims);
      const kind = WIDENED.exec(tensor.name)?.[1];
      if (kind === undefined)
        return {
          name: tensor.name,
          dims: tensor.dims,
          ggmlType: tensor.ggmlType,
          byteLength,
          data: () => readGgufTensorChunks(handle, source, tensor, byteLength),
        };
      const dims = kind === "down" ? [feedForwardLength, tensor.dims[1]!] : [tensor.dims[0]!, feedForwardLength];
      return {
        name: tensor.name,
        dims,
        ggmlType: tensor.ggmlType,
        byteLength: ggmlTensorBytes(ggmlTypeInfo(tensor.ggmlType), dims),
        data: () => (kind === "down" ? widenColumns(plan, tensor, byteLength) : widenRows(plan, tensor, byteLength)),
      };
    });
    const writer = new GgufRawWriter({
      metadata: targetMetadata(source, key, feedForwardLength, perturbation, sourcePath),
      tensors,
    });
    const onProgress = options.onProgress;
    await writer.writeFile(outPath, onProgress && ((writtenBytes) => onProgress(writtenBytes, writer.totalSize)));
    return { sourceFeedForward, feedForwardLength, sourceBytes, outBytes: writer.totalSize };
  } finally {
    await handle.close();
  }
}
