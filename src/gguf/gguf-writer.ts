import { endianness } from "node:os";
import { float32ArrayToF16 } from "./float16.ts";
import { GGML_TYPE_ID, type GgmlTypeName, ggmlTypeByName } from "./ggml-types.ts";
import type { GgufKv } from "./gguf-kv.ts";
import { type GgufTensorPlacement, layOutGguf, paddingAfter } from "./gguf-layout.ts";
import { quantize } from "./quantize.ts";
import { writeFileAtomically } from "./write-file-atomically.ts";

/** The tensor types this writer can encode from float32 values, smallest first (the order messages list them in). */
export const ENCODABLE_TYPES = ["Q4_0", "Q8_0", "F16", "F32"] as const satisfies readonly GgmlTypeName[];

export type EncodableTypeName = (typeof ENCODABLE_TYPES)[number];

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

const hostIsLittleEndian = endianness() === "LE";

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

/**
 * Serializes a {@link GgufSpec} as a GGUF v3 file, encoding float32 values as each tensor's type. Tensors are laid
 * out in spec order, each padded to the alignment exactly as ggml does, since llama.cpp rejects any other offsets.
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
    } = layOutGguf(spec.metadata, spec.tensors, (tensor) => ({
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
      const padding = paddingAfter(placement.byteLength, this.alignment);
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
    await writeFileAtomically(path, this.chunks(), onProgress);
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
