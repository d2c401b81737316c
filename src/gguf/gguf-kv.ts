/** GGUF metadata as both the reader and the writers see it: the on-disk value types and one key/value pair. */

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
