import { GGUF_VALUE_TYPE, type GgufBigIntType, type GgufKv, type GgufNumberType } from "./gguf-kv.ts";

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

/** Growable little-endian byte buffer for a GGUF header: numbers, strings and metadata key/values as GGUF stores them. */
export class ByteSink {
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

  /** One metadata entry: its key, its value type and its value. */
  kv(kv: GgufKv): void {
    this.string(kv.key);
    this.number("uint32", GGUF_VALUE_TYPE[kv.type]);
    switch (kv.type) {
      case "bool":
        this.bool(kv.value);
        return;
      case "string":
        this.string(kv.value);
        return;
      case "uint64":
      case "int64":
        this.bigint(kv.type, kv.value);
        return;
      case "array":
        this.array(kv);
        return;
      default:
        this.number(kv.type, kv.value);
        return;
    }
  }

  private array(kv: Extract<GgufKv, { type: "array" }>): void {
    this.number("uint32", GGUF_VALUE_TYPE[kv.itemType]);
    this.bigint("uint64", BigInt(kv.value.length));
    switch (kv.itemType) {
      case "bool":
        for (const item of kv.value) this.bool(item);
        return;
      case "string":
        for (const item of kv.value) this.string(item);
        return;
      case "uint64":
      case "int64":
        for (const item of kv.value) this.bigint(kv.itemType, item);
        return;
      default:
        for (let i = 0; i < kv.value.length; i++) this.number(kv.itemType, kv.value[i]!);
        return;
    }
  }

  toBuffer(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}
