import type { GgufKv } from "./gguf-kv.ts";
import { type GgufTensorPlacement, layOutGguf, paddingAfter } from "./gguf-layout.ts";
import { writeFileAtomically } from "./write-file-atomically.ts";

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
    } = layOutGguf(spec.metadata, spec.tensors, (tensor) => {
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
      const padding = paddingAfter(tensor.byteLength, this.alignment);
      if (padding > 0) yield Buffer.alloc(padding);
    }
  }

  /** Streams the file to `path` via a temporary sibling; `onProgress` receives the bytes written so far. */
  async writeFile(path: string, onProgress?: (writtenBytes: number) => void): Promise<void> {
    await writeFileAtomically(path, this.chunks(), onProgress);
  }
}
