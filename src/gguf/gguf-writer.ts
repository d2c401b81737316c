import { open, rename, rm } from "node:fs/promises";
import { endianness } from "node:os";
import { float32ArrayToF16 } from "./float16.ts";
import { GGML_TYPE_ID, type GgmlTypeName, ggmlTypeByName } from "./ggml-types.ts";
import { quantize } from "./quantize.ts";

export { float32ArrayToF16, float32ToF16Bits } from "./float16.ts";

/** GGUF metadata value type ids, as stored on disk. */
export const GGUF_VALUE_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

/** The tensor types this writer can encode from float32 values, smallest first (the order messages list them in). */
export const ENCODABLE_TYPES = ["Q4_0", "Q8_0", "F16", "F32"] as const satisfies readonly GgmlTypeName[];

export type EncodableTypeName = (typeof ENCODABLE_TYPES)[number];
export type GgufNumberType = "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32" | "float64";
export type GgufBigIntType = "uint64" | "int64";

/** One metadata key/value; `type` is the on-disk GGUF type, never inferred from the JS value. */
export type GgufKv =
  | { key: string; type: GgufNumberType; value: number }
  | { key: string; type: GgufBigIntType; value: bigint }
  | { key: string; type: "bool"; value: boolean }
  | { key: string; type: "string"; value: string }
  | { key: string; type: "array"; itemType: GgufNumberType; value: ArrayLike<number> }
  | { key: string; type: "array"; itemType: GgufBigIntType; value: readonly bigint[] }
  | { key: string; type: "array"; itemType: "bool"; value: readonly boolean[] }
  | { key: string; type: "array"; itemType: "string"; value: readonly string[] };

export interface GgufTensor {
  name: string;
  /** ggml order: `dims[0]` is the fastest-varying (row length) dimension. At most 4 dims. */
  dims: readonly number[];
  /**
   * Encoding of the tensor on disk; values are converted from float32 when written. Q8_0 and Q4_0 quantize
   * blocks of 32 consecutive values, so `dims[0]` must be a multiple of 32 for them.
   */
  type: EncodableTypeName;
  /**
   * Values in ggml order. A function is called only when the tensor is written, so large models never have to
   * sit in memory all at once; it may return the values in consecutive chunks (each a whole number of blocks)
   * so that not even one tensor has to.
   */
  data: Float32Array | (() => Float32Array | Iterable<Float32Array>);
}

export interface GgufSpec {
  metadata: readonly GgufKv[];
  tensors: readonly GgufTensor[];
}

/** Where a tensor's bytes land; `offset` is relative to the start of the data section. */
export interface GgufTensorPlacement {
  name: string;
  offset: number;
  byteLength: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const GGUF_VERSION = 3;
const DEFAULT_ALIGNMENT = 32;
const NUMBER_BYTES: Record<GgufNumberType, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
};
const hostIsLittleEndian = endianness() === "LE";

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Growable little-endian byte buffer for the header and metadata section. */
class ByteSink {
  private buffer = Buffer.alloc(64 * 1024);
  length = 0;

  private reserve(bytes: number): number {
    if (this.length + bytes > this.buffer.length) {
      const next = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + bytes));
      this.buffer.copy(next, 0, 0, this.length);
      this.buffer = next;
    }
    const at = this.length;
    this.length += bytes;
    return at;
  }

  number(type: GgufNumberType, value: number): void {
    if (!Number.isFinite(value) && type !== "float32" && type !== "float64")
      throw new RangeError(`GGUF ${type} value must be finite, got ${value}`);
    if (type !== "float32" && type !== "float64" && !Number.isInteger(value))
      throw new RangeError(`GGUF ${type} value must be an integer, got ${value}`);
    // Reserve before touching this.buffer: reserving may swap in a larger buffer.
    const at = this.reserve(NUMBER_BYTES[type]);
    switch (type) {
      case "uint8":
        this.buffer.writeUInt8(value, at);
        break;
      case "int8":
        this.buffer.writeInt8(value, at);
        break;
      case "uint16":
        this.buffer.writeUInt16LE(value, at);
        break;
      case "int16":
        this.buffer.writeInt16LE(value, at);
        break;
      case "uint32":
        this.buffer.writeUInt32LE(value, at);
        break;
      case "int32":
        this.buffer.writeInt32LE(value, at);
        break;
      case "float32":
        this.buffer.writeFloatLE(value, at);
        break;
      case "float64":
        this.buffer.writeDoubleLE(value, at);
        break;
    }
  }

  bigint(type: GgufBigIntType, value: bigint): void {
    const at = this.reserve(8);
    if (type === "uint64") this.buffer.writeBigUInt64LE(value, at);
    else this.buffer.writeBigInt64LE(value, at);
  }

  bool(value: boolean): void {
    const at = this.reserve(1);
    this.buffer.writeUInt8(value ? 1 : 0, at);
  }

  string(value: string): void {
    const byteLength = Buffer.byteLength(value, "utf8");
    this.bigint("uint64", BigInt(byteLength));
    const at = this.reserve(byteLength);
    this.buffer.write(value, at, byteLength, "utf8");
  }

  zeros(count: number): void {
    const at = this.reserve(count);
    this.buffer.fill(0, at, this.length);
  }

  toBuffer(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

function writeKvValue(sink: ByteSink, kv: GgufKv): void {
  sink.number("uint32", GGUF_VALUE_TYPE[kv.type]);
  switch (kv.type) {
    case "bool":
      sink.bool(kv.value);
      return;
    case "string":
      sink.string(kv.value);
      return;
    case "uint64":
    case "int64":
      sink.bigint(kv.type, kv.value);
      return;
    case "array":
      break;
    default:
      sink.number(kv.type, kv.value);
      return;
  }
  sink.number("uint32", GGUF_VALUE_TYPE[kv.itemType]);
  sink.bigint("uint64", BigInt(kv.value.length));
  switch (kv.itemType) {
    case "bool":
      for (const item of kv.value) sink.bool(item);
      return;
    case "string":
      for (const item of kv.value) sink.string(item);
      return;
    case "uint64":
    case "int64":
      for (const item of kv.value) sink.bigint(kv.itemType, item);
      return;
    default:
      for (let i = 0; i < kv.value.length; i++) sink.number(kv.itemType, kv.value[i]!);
      return;
  }
}

function elementCount(tensor: Pick<GgufTensor, "name" | "dims">): number {
  if (tensor.dims.length < 1 || tensor.dims.length > 4)
    throw new RangeError(`tensor ${tensor.name}: ggml supports 1 to 4 dims, got ${tensor.dims.length}`);
  for (const dim of tensor.dims)
    if (!Number.isSafeInteger(dim) || dim < 1) throw new RangeError(`tensor ${tensor.name}: invalid dimension ${dim}`);
  return tensor.dims.reduce((product, dim) => product * dim, 1);
}

/** Bytes of a tensor's data (before alignment padding). */
export function tensorByteLength(tensor: Pick<GgufTensor, "name" | "dims" | "type">): number {
  if (!(ENCODABLE_TYPES as readonly string[]).includes(tensor.type))
    throw new RangeError(`tensor ${tensor.name}: unsupported type ${String(tensor.type)}`);
  const { blockSize, bytesPerBlock } = ggmlTypeByName(tensor.type);
  const count = elementCount(tensor);
  // ggml blocks never straddle rows, so it is the row length that must divide evenly.
  if (tensor.dims[0]! % blockSize !== 0)
    throw new RangeError(
      `tensor ${tensor.name}: ${tensor.type} needs dims[0] to be a multiple of ${blockSize}, got ${tensor.dims[0]}`,
    );
  return (count / blockSize) * bytesPerBlock;
}

function resolveAlignment(metadata: readonly GgufKv[]): number {
  const entry = metadata.find((kv) => kv.key === "general.alignment");
  if (entry == null) return DEFAULT_ALIGNMENT;
  // llama.cpp rejects any other type or a non power of two here.
  if (entry.type !== "uint32" || entry.value < 1 || (entry.value & (entry.value - 1)) !== 0)
    throw new RangeError("general.alignment must be a uint32 power of two");
  return entry.value;
}

/**
 * Serializes a {@link GgufSpec} as a GGUF v3 file. Tensors are laid out in spec order,
 * each padded to the alignment exactly as ggml does, since llama.cpp rejects any other offsets.
 */
export class GgufWriter {
  readonly alignment: number;
  readonly placements: readonly GgufTensorPlacement[];
  /** Absolute file offset of the tensor data section. */
  readonly dataOffset: number;
  readonly totalSize: number;
  private readonly header: Buffer;

  constructor(private readonly spec: GgufSpec) {
    ({
      alignment: this.alignment,
      placements: this.placements,
      header: this.header,
      dataOffset: this.dataOffset,
      totalSize: this.totalSize,
    } = layOutFile(spec.metadata, spec.tensors, (tensor) => ({
      name: tensor.name,
      dims: tensor.dims,
      ggmlType: GGML_TYPE_ID[tensor.type],
      byteLength: tensorByteLength(tensor),
    })));
  }

  /** The file as a sequence of buffers: header, then each tensor's bytes followed by its padding. */
  *chunks(): Generator<Buffer> {
    yield this.header;
    for (const [index, tensor] of this.spec.tensors.entries()) {
      const placement = this.placements[index]!;
      yield* encodeTensor(tensor, placement.byteLength);
      const padding = alignUp(placement.byteLength, this.alignment) - placement.byteLength;
      if (padding > 0) yield Buffer.alloc(padding);
    }
  }

  /** Whole file in memory; meant for small files and tests. */
  toBuffer(): Buffer {
    return Buffer.concat([...this.chunks()], this.totalSize);
  }

  /**
   * Streams the file to `path` via a temporary sibling so readers never see a partial model.
   * `onProgress` receives the bytes written so far after each chunk.
   */
  async writeFile(path: string, onProgress?: (writtenBytes: number) => void): Promise<void> {
    await writeChunksAtomically(path, this.chunks(), onProgress);
  }
}

/** A tensor as the file's header and layout see it. */
interface LaidOutTensor {
  name: string;
  dims: readonly number[];
  ggmlType: number;
  byteLength: number;
}

/** What both writers derive from a spec before writing a byte: alignment, tensor offsets, the header. */
interface FileLayout {
  alignment: number;
  placements: GgufTensorPlacement[];
  header: Buffer;
  dataOffset: number;
  totalSize: number;
}

/**
 * Checks the metadata and tensor names, then lays the tensors out in order. `describe` validates one tensor and
 * gives its header view; it runs after the name checks, so a duplicate is reported before a bad tensor.
 */
function layOutFile<Tensor extends { name: string }>(
  metadata: readonly GgufKv[],
  tensors: readonly Tensor[],
  describe: (tensor: Tensor) => LaidOutTensor,
): FileLayout {
  const alignment = resolveAlignment(metadata);
  assertUnique(
    metadata.map((kv) => kv.key),
    "metadata key",
  );
  assertUnique(
    tensors.map((tensor) => tensor.name),
    "tensor name",
  );
  const described = tensors.map(describe);
  const { placements, dataBytes } = placeTensors(described, alignment);
  const header = serializeHeader(
    metadata,
    described.map((tensor, index) => ({
      name: tensor.name,
      dims: tensor.dims,
      ggmlType: tensor.ggmlType,
      offset: placements[index]!.offset,
    })),
    alignment,
  );
  return { alignment, placements, header, dataOffset: header.length, totalSize: header.length + dataBytes };
}

/** Where each tensor lands when they are laid out in order, each padded to the alignment as ggml does. */
function placeTensors(
  tensors: readonly { name: string; byteLength: number }[],
  alignment: number,
): { placements: GgufTensorPlacement[]; dataBytes: number } {
  const placements: GgufTensorPlacement[] = [];
  let offset = 0;
  for (const { name, byteLength } of tensors) {
    placements.push({ name, offset, byteLength });
    offset += alignUp(byteLength, alignment);
  }
  return { placements, dataBytes: offset };
}

function writeMetadata(sink: ByteSink, metadata: readonly GgufKv[]): void {
  for (const kv of metadata) {
    sink.string(kv.key);
    writeKvValue(sink, kv);
  }
}

/** Magic, version, counts, metadata and tensor infos, padded to the alignment: everything before the tensor data. */
function serializeHeader(
  metadata: readonly GgufKv[],
  tensors: readonly { name: string; dims: readonly number[]; ggmlType: number; offset: number }[],
  alignment: number,
): Buffer {
  const sink = new ByteSink();
  sink.number("uint32", GGUF_MAGIC);
  sink.number("uint32", GGUF_VERSION);
  sink.bigint("uint64", BigInt(tensors.length));
  sink.bigint("uint64", BigInt(metadata.length));
  writeMetadata(sink, metadata);
  for (const tensor of tensors) {
    sink.string(tensor.name);
    sink.number("uint32", tensor.dims.length);
    for (const dim of tensor.dims) sink.bigint("uint64", BigInt(dim));
    sink.number("uint32", tensor.ggmlType);
    sink.bigint("uint64", BigInt(tensor.offset));
  }
  sink.zeros(alignUp(sink.length, alignment) - sink.length);
  return sink.toBuffer();
}

/** Writes the chunks to a temporary sibling of `path` and renames it into place, so readers never see a partial file. */
async function writeChunksAtomically(
  path: string,
  chunks: Iterable<Buffer> | AsyncIterable<Buffer>,
  onProgress?: (writtenBytes: number) => void,
): Promise<void> {
  const temporaryPath = `${path}.${process.pid}.partial`;
  const handle = await open(temporaryPath, "w");
  try {
    let writtenBytes = 0;
    for await (const chunk of chunks) {
      await handle.write(chunk);
      writtenBytes += chunk.length;
      onProgress?.(writtenBytes);
    }
    await handle.close();
    await rename(temporaryPath, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temporaryPath, { force: true });
    throw error;
  }
}

/**
 * The metadata section as GGUF stores it (each key, type and value; no counts). Comparing it with a source file's
 * bytes proves that metadata read from that file is written back byte for byte.
 */
export function encodeGgufMetadata(metadata: readonly GgufKv[]): Buffer {
  const sink = new ByteSink();
  writeMetadata(sink, metadata);
  return Buffer.from(sink.toBuffer());
}

/**
 * A tensor whose bytes are already encoded in its ggml type, whatever the type (K-quants, IQ types, BF16 …), such
 * as one copied from another GGUF. The writer never interprets the bytes; the caller sizes them from the type's
 * block layout (`ggmlTensorBytes` in ggml-types.ts).
 */
export interface GgufRawTensor {
  name: string;
  /** ggml order: `dims[0]` is the row length. 1 to 4 dims. */
  dims: readonly number[];
  /** ggml type id, as stored on disk. */
  ggmlType: number;
  /** Bytes of the tensor's data, before alignment padding. */
  byteLength: number;
  /** The bytes, in consecutive chunks of any size; called only when the tensor is written. */
  data: () => Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
}

export interface GgufRawSpec {
  metadata: readonly GgufKv[];
  tensors: readonly GgufRawTensor[];
}

function checkRawTensor(tensor: GgufRawTensor): void {
  // gguf.cpp's own limits: at most 4 dims, none negative; the type id is a uint32.
  if (tensor.dims.length < 1 || tensor.dims.length > 4)
    throw new RangeError(`tensor ${tensor.name}: ggml supports 1 to 4 dims, got ${tensor.dims.length}`);
  for (const dim of tensor.dims)
    if (!Number.isSafeInteger(dim) || dim < 0) throw new RangeError(`tensor ${tensor.name}: invalid dimension ${dim}`);
  if (!Number.isInteger(tensor.ggmlType) || tensor.ggmlType < 0 || tensor.ggmlType > 0xffffffff)
    throw new RangeError(`tensor ${tensor.name}: invalid ggml type ${tensor.ggmlType}`);
  if (!Number.isSafeInteger(tensor.byteLength) || tensor.byteLength < 0)
    throw new RangeError(`tensor ${tensor.name}: invalid byte length ${tensor.byteLength}`);
}

/**
 * Writes a GGUF v3 file from already-encoded tensors, streaming their bytes: the layout (alignment, offsets,
 * padding) is exactly {@link GgufWriter}'s, only the tensor data is copied rather than encoded.
 */
export class GgufRawWriter {
  readonly alignment: number;
  readonly placements: readonly GgufTensorPlacement[];
  /** Absolute file offset of the tensor data section. */
  readonly dataOffset: number;
  readonly totalSize: number;
  private readonly header: Buffer;

  constructor(private readonly spec: GgufRawSpec) {
    ({
      alignment: this.alignment,
      placements: this.placements,
      header: this.header,
      dataOffset: this.dataOffset,
      totalSize: this.totalSize,
    } = layOutFile(spec.metadata, spec.tensors, (tensor) => {
      checkRawTensor(tensor);
      return tensor;
    }));
  }

  /** The file as a sequence of buffers: header, then each tensor's bytes followed by its padding. */
  async *chunks(): AsyncGenerator<Buffer> {
    yield this.header;
    for (const tensor of this.spec.tensors) {
      let copiedBytes = 0;
      for await (const chunk of tensor.data()) {
        copiedBytes += chunk.byteLength;
        if (copiedBytes > tensor.byteLength) break;
        yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
      if (copiedBytes !== tensor.byteLength)
        throw new RangeError(
          `tensor ${tensor.name}: expected ${tensor.byteLength} bytes, got ${copiedBytes}` +
            `${copiedBytes > tensor.byteLength ? " or more" : ""}`,
        );
      const padding = alignUp(tensor.byteLength, this.alignment) - tensor.byteLength;
      if (padding > 0) yield Buffer.alloc(padding);
    }
  }

  /** Streams the file to `path` via a temporary sibling; `onProgress` receives the bytes written so far. */
  async writeFile(path: string, onProgress?: (writtenBytes: number) => void): Promise<void> {
    await writeChunksAtomically(path, this.chunks(), onProgress);
  }
}

function assertUnique(names: readonly string[], what: string): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) throw new Error(`duplicate GGUF ${what}: ${name}`);
    seen.add(name);
  }
}

function* encodeTensor(tensor: GgufTensor, byteLength: number): Generator<Buffer> {
  const source = typeof tensor.data === "function" ? tensor.data() : tensor.data;
  const { blockSize, bytesPerBlock } = ggmlTypeByName(tensor.type);
  const expectedValues = (byteLength / bytesPerBlock) * blockSize;
  let valueCount = 0;
  for (const values of source instanceof Float32Array ? [source] : source) {
    valueCount += values.length;
    if (valueCount > expectedValues) break;
    if (values.length % blockSize !== 0)
      throw new RangeError(
        `tensor ${tensor.name}: ${tensor.type} chunks must hold whole blocks of ${blockSize} values, got ${values.length}`,
      );
    yield encodeChunk(tensor.type, values);
  }
  if (valueCount !== expectedValues)
    throw new RangeError(
      `tensor ${tensor.name}: expected ${expectedValues} values, got ${valueCount}${valueCount > expectedValues ? " or more" : ""}`,
    );
}

function encodeChunk(type: EncodableTypeName, values: Float32Array): Buffer {
  if (type === "Q8_0" || type === "Q4_0") {
    const blocks = quantize(type, values);
    return Buffer.from(blocks.buffer, blocks.byteOffset, blocks.byteLength);
  }
  const encoded = type === "F16" ? float32ArrayToF16(values) : values;
  const bytes = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  if (hostIsLittleEndian) return bytes;
  // Copy before swapping so caller-owned arrays are left untouched.
  const swapped = Buffer.from(bytes);
  return type === "F16" ? swapped.swap16() : swapped.swap32();
}
