/** IEEE 754 binary16 conversions, shared by the F16 tensor encoding and the f16 block scales of Q8_0 and Q4_0. */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * IEEE 754 binary16 bits for `value` after rounding it to float32 (the source format of tensor data):
 * round-to-nearest-even, gradual underflow to subnormals, overflow to infinity, NaN kept quiet.
 */
export function float32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;

  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);

  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;

  if (halfExponent <= 0) {
    // Below 2^-25 even the smallest subnormal is more than half a step away.
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    return sign | roundShifted(significand, shift);
  }

  // A rounding carry out of the mantissa correctly bumps the exponent (and 65520+ becomes infinity).
  return sign | ((halfExponent << 10) + roundShifted(mantissa, 13));
}

function roundShifted(value: number, shift: number): number {
  const truncated = value >>> shift;
  const remainder = value & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return remainder > halfway || (remainder === halfway && (truncated & 1) === 1) ? truncated + 1 : truncated;
}

/** Converts float32 values to binary16 bit patterns. */
export function float32ArrayToF16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToF16Bits(values[i]!);
  return out;
}

/** Decodes binary16 bits exactly (every binary16 value is representable as a double). */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
