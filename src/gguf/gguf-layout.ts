/**
 * Where everything goes in a GGUF v3 file: the header (magic, version, counts, metadata, tensor infos) and each
 * tensor's offset, padded to the alignment exactly as ggml does, since llama.cpp rejects any other offsets.
 * Both writers share it, so a copied model and an encoded one are laid out alike.
 */
import { ByteSink } from "./byte-sink.ts";
import type { GgufKv } from "./gguf-kv.ts";

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const GGUF_VERSION = 3;
const DEFAULT_ALIGNMENT = 32;

/** Offset of the metadata section in every GGUF v2/v3 file: magic, version, tensor count and KV count. */
export const GGUF_METADATA_OFFSET = 4 + 4 + 8 + 8;

/** Where a tensor's bytes land; `offset` is relative to the start of the data section. */
export interface GgufTensorPlacement {
  name: string;
  offset: number;
  byteLength: number;
}

/** A tensor as the file's header and layout see it. */
export interface LaidOutTensor {
  name: string;
  dims: readonly number[];
  ggmlType: number;
  byteLength: number;
}

/** What a writer derives from a spec before writing a byte: alignment, tensor offsets, the header. */
export interface GgufLayout {
  alignment: number;
  placements: GgufTensorPlacement[];
  header: Buffer;
  /** Absolute file offset of the tensor data section. */
  dataOffset: number;
  totalSize: number;
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Zero bytes that follow a tensor of `byteLength` bytes so the next one starts aligned. */
export function paddingAfter(byteLength: number, alignment: number): number {
  return alignUp(byteLength, alignment) - byteLength;
}

function resolveAlignment(metadata: readonly GgufKv[]): number {
  const entry = metadata.find((kv) => kv.key === "general.alignment");
  if (entry == null) return DEFAULT_ALIGNMENT;
  // llama.cpp rejects any other type or a non power of two here.
  if (entry.type !== "uint32" || entry.value < 1 || (entry.value & (entry.value - 1)) !== 0)
    throw new RangeError("general.alignment must be a uint32 power of two");
  return entry.value;
}

function assertUnique(names: readonly string[], what: string): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) throw new Error(`duplicate GGUF ${what}: ${name}`);
    seen.add(name);
  }
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
  for (const kv of metadata) sink.kv(kv);
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

/**
 * Checks the metadata and tensor names, then lays the tensors out in order. `describe` validates one tensor and
 * gives its header view; it runs after the name checks, so a duplicate is reported before a bad tensor.
 */
export function layOutGguf<Tensor extends { name: string }>(
  metadata: readonly GgufKv[],
  tensors: readonly Tensor[],
  describe: (tensor: Tensor) => LaidOutTensor,
): GgufLayout {
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

/**
 * The metadata section as GGUF stores it (each key, type and value; no counts). Comparing it with a source file's
 * bytes proves that metadata read from that file is written back byte for byte.
 */
export function encodeGgufMetadata(metadata: readonly GgufKv[]): Buffer {
  const sink = new ByteSink();
  for (const kv of metadata) sink.kv(kv);
  return Buffer.from(sink.toBuffer());
}
