import { type FileHandle, open } from "node:fs/promises";
import { GGUF_VALUE_TYPE, type GgufKv } from "./gguf-kv.ts";

export interface GgufTensorInfo {
  name: string;
  dims: number[];
  ggmlType: number;
  /** Relative to the start of the data section. */
  offset: number;
}

export interface GgufHeader {
  version: number;
  alignment: number;
  metadata: GgufKv[];
  tensors: GgufTensorInfo[];
  /** Absolute file offset of the tensor data section. */
  dataOffset: number;
}

type ScalarType = Exclude<GgufKv["type"], "array">;
type ScalarValue = number | bigint | boolean | string;

const TYPE_NAMES = new Map<number, ScalarType | "array">(
  Object.entries(GGUF_VALUE_TYPE).map(([name, id]) => [id, name as ScalarType | "array"]),
);

/** Thrown internally when the buffer ends before the header does, so the file reader can fetch more. */
class TruncatedError extends Error {}

class Cursor {
  offset = 0;
  constructor(private readonly buffer: Buffer) {}

  private take(bytes: number): number {
    if (this.offset + bytes > this.buffer.length)
      throw new TruncatedError("GGUF header extends past the available bytes");
    const at = this.offset;
    this.offset += bytes;
    return at;
  }

  u32(): number {
    return this.buffer.readUInt32LE(this.take(4));
  }
  u64(): bigint {
    return this.buffer.readBigUInt64LE(this.take(8));
  }
  safeU64(): number {
    const value = this.u64();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`GGUF value ${value} is too large`);
    return Number(value);
  }

  string(): string {
    const length = this.safeU64();
    const at = this.take(length);
    return this.buffer.toString("utf8", at, at + length);
  }

  scalar(type: ScalarType): ScalarValue {
    const b = this.buffer;
    switch (type) {
      case "uint8":
        return b.readUInt8(this.take(1));
      case "int8":
        return b.readInt8(this.take(1));
      case "uint16":
        return b.readUInt16LE(this.take(2));
      case "int16":
        return b.readInt16LE(this.take(2));
      case "uint32":
        return b.readUInt32LE(this.take(4));
      case "int32":
        return b.readInt32LE(this.take(4));
      case "float32":
        return b.readFloatLE(this.take(4));
      case "float64":
        return b.readDoubleLE(this.take(8));
      case "uint64":
        return b.readBigUInt64LE(this.take(8));
      case "int64":
        return b.readBigInt64LE(this.take(8));
      case "bool":
        return b.readUInt8(this.take(1)) !== 0;
      case "string":
        return this.string();
    }
  }
}

function typeName(id: number): ScalarType | "array" {
  const name = TYPE_NAMES.get(id);
  if (name == null) throw new Error(`unknown GGUF value type ${id}`);
  return name;
}

function readKv(cursor: Cursor): GgufKv {
  const key = cursor.string();
  const type = typeName(cursor.u32());
  if (type !== "array") return { key, type, value: cursor.scalar(type) } as GgufKv;
  const itemType = typeName(cursor.u32());
  if (itemType === "array") throw new Error(`nested arrays are not supported (key ${key})`);
  const length = cursor.safeU64();
  const value: ScalarValue[] = [];
  for (let i = 0; i < length; i++) value.push(cursor.scalar(itemType));
  return { key, type, itemType, value } as GgufKv;
}

/** Parses the header, metadata and tensor infos from a buffer that starts at the beginning of a GGUF file. */
export function parseGgufHeader(buffer: Buffer): GgufHeader {
  const cursor = new Cursor(buffer);
  if (buffer.length >= 4 && buffer.toString("latin1", 0, 4) !== "GGUF") throw new Error("not a GGUF file");
  cursor.u32();
  const version = cursor.u32();
  if (version !== 2 && version !== 3) throw new Error(`unsupported GGUF version ${version}`);
  const tensorCount = cursor.safeU64();
  const kvCount = cursor.safeU64();

  const metadata: GgufKv[] = [];
  for (let i = 0; i < kvCount; i++) metadata.push(readKv(cursor));
  const alignmentKv = metadata.find((kv) => kv.key === "general.alignment");
  const alignment = alignmentKv?.type === "uint32" ? alignmentKv.value : 32;

  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = cursor.string();
    const dimCount = cursor.u32();
    const dims: number[] = [];
    for (let d = 0; d < dimCount; d++) dims.push(cursor.safeU64());
    tensors.push({ name, dims, ggmlType: cursor.u32(), offset: cursor.safeU64() });
  }
  const dataOffset = Math.ceil(cursor.offset / alignment) * alignment;
  return { version, alignment, metadata, tensors, dataOffset };
}

/** Reads only as much of the file as the header needs, growing the window until it parses. */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    for (let window = Math.min(size, 1 << 20); ; window = Math.min(size, window * 4)) {
      const buffer = Buffer.alloc(window);
      await handle.read(buffer, 0, window, 0);
      try {
        return parseGgufHeader(buffer);
      } catch (error) {
        if (!(error instanceof TruncatedError) || window === size) throw error;
      }
    }
  } finally {
    await handle.close();
  }
}

/** Read size when streaming tensor data: large enough for throughput, small enough to keep memory flat. */
export const DEFAULT_TENSOR_CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * Streams the `byteLength` bytes of `tensor`'s data from an open GGUF file, in fresh buffers of at most
 * `chunkBytes`. The reader does not know ggml types, so the caller sizes the tensor (`ggmlTensorBytes` in
 * ggml-types.ts). Throws if the file ends first.
 */
export async function* readGgufTensorChunks(
  handle: FileHandle,
  header: GgufHeader,
  tensor: GgufTensorInfo,
  byteLength: number,
  chunkBytes = DEFAULT_TENSOR_CHUNK_BYTES,
): AsyncGenerator<Buffer> {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1)
    throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
  const start = header.dataOffset + tensor.offset;
  for (let done = 0; done < byteLength; ) {
    const chunk = Buffer.allocUnsafe(Math.min(chunkBytes, byteLength - done));
    let filled = 0;
    while (filled < chunk.length) {
      const { bytesRead } = await handle.read(chunk, filled, chunk.length - filled, start + done + filled);
      if (bytesRead === 0)
        throw new Error(
          `tensor ${tensor.name}: the file ends ${byteLength - done - filled} bytes before its data does`,
        );
      filled += bytesRead;
    }
    done += chunk.length;
    yield chunk;
  }
}

/** One tensor's bytes in memory, sized as for {@link readGgufTensorChunks}; meant for small tensors and tests. */
export async function readGgufTensorBytes(
  path: string,
  header: GgufHeader,
  tensor: GgufTensorInfo,
  byteLength: number,
): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of readGgufTensorChunks(handle, header, tensor, byteLength)) chunks.push(chunk);
    return Buffer.concat(chunks, byteLength);
  } finally {
    await handle.close();
  }
}
