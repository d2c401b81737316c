/** Storage layout of one ggml tensor type: `blockSize` elements are packed into `bytesPerBlock` bytes. */
export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: GgmlTypeName;
  readonly blockSize: number;
  readonly bytesPerBlock: number;
}

// Values from llama.cpp's `type_traits` table (ggml.c), checked against `ggml_blck_size`/`ggml_type_size` of
// the ggml library node-llama-cpp 3.21.1 ships. Ids 4, 5, 31-33 and 36-38 were removed from ggml and never occur.
const TYPE_ROWS = [
  [0, "F32", 1, 4],
  [1, "F16", 1, 2],
  [2, "Q4_0", 32, 18],
  [3, "Q4_1", 32, 20],
  [6, "Q5_0", 32, 22],
  [7, "Q5_1", 32, 24],
  [8, "Q8_0", 32, 34],
  [9, "Q8_1", 32, 36],
  [10, "Q2_K", 256, 84],
  [11, "Q3_K", 256, 110],
  [12, "Q4_K", 256, 144],
  [13, "Q5_K", 256, 176],
  [14, "Q6_K", 256, 210],
  [15, "Q8_K", 256, 292],
  [16, "IQ2_XXS", 256, 66],
  [17, "IQ2_XS", 256, 74],
  [18, "IQ3_XXS", 256, 98],
  [19, "IQ1_S", 256, 50],
  [20, "IQ4_NL", 32, 18],
  [21, "IQ3_S", 256, 110],
  [22, "IQ2_S", 256, 82],
  [23, "IQ4_XS", 256, 136],
  [24, "I8", 1, 1],
  [25, "I16", 1, 2],
  [26, "I32", 1, 4],
  [27, "I64", 1, 8],
  [28, "F64", 1, 8],
  [29, "IQ1_M", 256, 56],
  [30, "BF16", 1, 2],
  [34, "TQ1_0", 256, 54],
  [35, "TQ2_0", 256, 66],
  [39, "MXFP4", 32, 17],
  [40, "NVFP4", 64, 36],
  [41, "Q1_0", 128, 18],
  [42, "Q2_0", 64, 18],
] as const satisfies readonly (readonly [id: number, name: string, blockSize: number, bytesPerBlock: number])[];

/** The name of a ggml tensor type, as ggml spells it ("F16", "Q8_0"). */
export type GgmlTypeName = (typeof TYPE_ROWS)[number][1];

/** Every ggml tensor type a GGUF file can use, by id. */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  TYPE_ROWS.map(([id, name, blockSize, bytesPerBlock]) => [id, Object.freeze({ id, name, blockSize, bytesPerBlock })]),
);

const BY_NAME = new Map<string, GgmlTypeInfo>([...GGML_TYPES.values()].map((info) => [info.name, info]));

/** Type ids by name, for code that compares or writes ids of types it names (`GGML_TYPE_ID.F16`). */
export const GGML_TYPE_ID = Object.freeze(Object.fromEntries(TYPE_ROWS.map(([id, name]) => [name, id]))) as Readonly<
  Record<GgmlTypeName, number>
>;

/** The type with this id; throws for ids ggml does not know (a corrupt or too new file). */
export function ggmlTypeInfo(id: number): GgmlTypeInfo {
  const info = GGML_TYPES.get(id);
  if (info === undefined) throw new RangeError(`unknown ggml tensor type ${id}`);
  return info;
}

/** The type with this name (case-insensitive, e.g. "q8_0"). */
export function ggmlTypeByName(name: string): GgmlTypeInfo {
  const info = BY_NAME.get(name.toUpperCase());
  if (info === undefined) throw new RangeError(`unknown ggml tensor type ${name}`);
  return info;
}

/** Bytes of one row of `rowLength` elements, as `ggml_row_size` computes it. */
export function ggmlRowBytes(type: GgmlTypeInfo, rowLength: number): number {
  if (rowLength % type.blockSize !== 0)
    throw new RangeError(`a ${type.name} row needs a multiple of ${type.blockSize} elements, got ${rowLength}`);
  return (rowLength / type.blockSize) * type.bytesPerBlock;
}

/** Bytes of a tensor with these dims (ggml order, `dims[0]` is the row): rows × row size, like `ggml_nbytes`. */
export function ggmlTensorBytes(type: GgmlTypeInfo, dims: readonly number[]): number {
  if (dims.length === 0) return type.bytesPerBlock;
  const rows = dims.slice(1).reduce((product, dim) => product * dim, 1);
  return rows * ggmlRowBytes(type, dims[0]!);
}
