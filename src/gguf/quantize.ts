/**
 * The Q8_0 and Q4_0 block formats, bit for bit as ggml's reference quantizers (`quantize_row_q8_0_ref`,
 * `quantize_row_q4_0_ref`) produce them, which is what `llama-quantize` writes when no importance matrix is given.
 *
 * ggml computes in float32. Every step here is a single +, -, * or / of float32 values rounded with Math.fround;
 * rounding the exact result to double first and then to float32 gives the same value for these operations,
 * because a double carries more than twice float32's precision plus two bits.
 */
import { f16BitsToNumber, float32ToF16Bits } from "./float16.ts";
import { ggmlTypeByName } from "./ggml-types.ts";

export type QuantizedTypeName = "Q8_0" | "Q4_0";

const Q8_0 = ggmlTypeByName("Q8_0");
const Q4_0 = ggmlTypeByName("Q4_0");

/** Values per block, for both formats (ggml's QK8_0 and QK4_0, both 32). */
export const QUANT_BLOCK_SIZE = Q8_0.blockSize;

/** Bytes per block: an f16 scale, then 32 int8 values (Q8_0) or 32 packed 4-bit values (Q4_0). */
export const QUANT_BLOCK_BYTES: Readonly<Record<QuantizedTypeName, number>> = Object.freeze({
  Q8_0: Q8_0.bytesPerBlock,
  Q4_0: Q4_0.bytesPerBlock,
});

function blockCount(type: QuantizedTypeName, valueCount: number): number {
  if (valueCount % QUANT_BLOCK_SIZE !== 0)
    throw new RangeError(`${type} needs a multiple of ${QUANT_BLOCK_SIZE} values, got ${valueCount}`);
  return valueCount / QUANT_BLOCK_SIZE;
}

function writeScale(out: Uint8Array, at: number, scale: number): void {
  // Explicitly little-endian, as GGUF is, whatever the host.
  const bits = float32ToF16Bits(scale);
  out[at] = bits & 0xff;
  out[at + 1] = bits >>> 8;
}

function readScale(bytes: Uint8Array, at: number): number {
  return f16BitsToNumber(bytes[at]! | (bytes[at + 1]! << 8));
}

/** Q8_0: per block of 32, d = max|x| / 127 and q = roundf(x / d) as int8. */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const blocks = blockCount("Q8_0", values.length);
  const out = new Uint8Array(blocks * QUANT_BLOCK_BYTES.Q8_0);
  const signed = new Int8Array(out.buffer);
  for (let block = 0; block < blocks; block++) {
    const base = block * QUANT_BLOCK_SIZE;
    let amax = 0;
    for (let j = 0; j < QUANT_BLOCK_SIZE; j++) {
      const magnitude = Math.abs(values[base + j]!);
      if (magnitude > amax) amax = magnitude;
    }
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const at = block * QUANT_BLOCK_BYTES.Q8_0;
    writeScale(out, at, d);
    for (let j = 0; j < QUANT_BLOCK_SIZE; j++) {
      const scaled = Math.fround(values[base + j]! * id);
      // C's roundf sends halfway cases away from zero; Int8Array stores truncate toward zero, and adding
      // ±0.5 to a float32 is exact in double, so this is roundf without Math.round's upward bias.
      signed[at + 2 + j] = scaled < 0 ? scaled - 0.5 : scaled + 0.5;
    }
  }
  return out;
}

/**
 * Q4_0: per block of 32, d = max / -8 where max is the value of largest magnitude (sign kept, first one wins),
 * q = min(15, trunc(x / d + 8.5)). Byte j holds value j in its low nibble and value j + 16 in its high nibble.
 */
export function quantizeQ4_0(values: Float32Array): Uint8Array {
  const blocks = blockCount("Q4_0", values.length);
  const half = QUANT_BLOCK_SIZE / 2;
  const out = new Uint8Array(blocks * QUANT_BLOCK_BYTES.Q4_0);
  for (let block = 0; block < blocks; block++) {
    const base = block * QUANT_BLOCK_SIZE;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QUANT_BLOCK_SIZE; j++) {
      const value = values[base + j]!;
      if (amax < Math.abs(value)) {
        amax = Math.abs(value);
        max = value;
      }
    }
    const d = Math.fround(max / -8);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const at = block * QUANT_BLOCK_BYTES.Q4_0;
    writeScale(out, at, d);
    for (let j = 0; j < half; j++) {
      const x0 = Math.fround(values[base + j]! * id);
      const x1 = Math.fround(values[base + half + j]! * id);
      // The largest magnitude maps to 0; its opposite would be 16 and is clamped, as in ggml.
      const q0 = Math.min(15, Math.trunc(Math.fround(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(x1 + 8.5)));
      out[at + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** Inverse of {@link quantizeQ8_0}: x = d * q. */
export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const blocks = bytes.length / QUANT_BLOCK_BYTES.Q8_0;
  if (!Number.isInteger(blocks))
    throw new RangeError(`Q8_0 data must be whole ${QUANT_BLOCK_BYTES.Q8_0}-byte blocks, got ${bytes.length} bytes`);
  const out = new Float32Array(blocks * QUANT_BLOCK_SIZE);
  for (let block = 0; block < blocks; block++) {
    const at = block * QUANT_BLOCK_BYTES.Q8_0;
    const d = readScale(bytes, at);
    for (let j = 0; j < QUANT_BLOCK_SIZE; j++)
      out[block * QUANT_BLOCK_SIZE + j] = d * ((bytes[at + 2 + j]! << 24) >> 24);
  }
  return out;
}

/** Inverse of {@link quantizeQ4_0}: x = d * (q - 8). */
export function dequantizeQ4_0(bytes: Uint8Array): Float32Array {
  const blocks = bytes.length / QUANT_BLOCK_BYTES.Q4_0;
  if (!Number.isInteger(blocks))
    throw new RangeError(`Q4_0 data must be whole ${QUANT_BLOCK_BYTES.Q4_0}-byte blocks, got ${bytes.length} bytes`);
  const half = QUANT_BLOCK_SIZE / 2;
  const out = new Float32Array(blocks * QUANT_BLOCK_SIZE);
  for (let block = 0; block < blocks; block++) {
    const at = block * QUANT_BLOCK_BYTES.Q4_0;
    const d = readScale(bytes, at);
    for (let j = 0; j < half; j++) {
      const packed = bytes[at + 2 + j]!;
      out[block * QUANT_BLOCK_SIZE + j] = d * ((packed & 0x0f) - 8);
      out[block * QUANT_BLOCK_SIZE + half + j] = d * ((packed >>> 4) - 8);
    }
  }
  return out;
}

/** Encodes `values` (a whole number of blocks) in the given block format. */
export function quantize(type: QuantizedTypeName, values: Float32Array): Uint8Array {
  return type === "Q8_0" ? quantizeQ8_0(values) : quantizeQ4_0(values);
}

/** Decodes whole blocks of the given format back to float32. */
export function dequantize(type: QuantizedTypeName, bytes: Uint8Array): Float32Array {
  return type === "Q8_0" ? dequantizeQ8_0(bytes) : dequantizeQ4_0(bytes);
}
