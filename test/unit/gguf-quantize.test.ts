import assert from "node:assert/strict";
import { test } from "node:test";
import { f16BitsToNumber } from "../../src/gguf/float16.ts";
import {
  dequantizeQ4_0,
  dequantizeQ8_0,
  QUANT_BLOCK_BYTES,
  quantize,
  quantizeQ4_0,
  quantizeQ8_0,
} from "../../src/gguf/quantize.ts";

/** One block of 32 values: `head` first, zeros after, and `tail` from value 16 on when given. */
function block(head: number[], tail: number[] = []): Float32Array {
  const values = new Float32Array(32);
  values.set(head, 0);
  values.set(tail, 16);
  return values;
}

/** Deterministic bell-shaped values with standard deviation about `std` (a small LCG; no dependence on Math.random). */
function randomValues(count: number, std: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const uniform = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  return Float32Array.from(
    { length: count },
    () => (uniform() + uniform() + uniform() + uniform() - 2) * std * Math.sqrt(3),
  );
}

const scaleOf = (bytes: Uint8Array, at: number): number => f16BitsToNumber(bytes[at]! | (bytes[at + 1]! << 8));

test("Q8_0 encodes a block with an exact scale as a hand-computed block", () => {
  // max |x| = 63.5, so d = 0.5 exactly and q = roundf(2x), with halfway cases rounded away from zero.
  const bytes = quantizeQ8_0(block([63.5, -63.5, 0.25, -0.25, 0.75, -0.75, 1.2, -1.2, 0.2, 10]));
  assert.equal(bytes.length, 34);
  assert.deepEqual([...bytes.subarray(0, 2)], [0x00, 0x38], "d = 0.5 as little-endian f16");
  assert.deepEqual([...new Int8Array(bytes.buffer, 2, 12)], [127, -127, 1, -1, 2, -2, 2, -2, 0, 20, 0, 0]);
});

test("Q8_0 gives an all-zero block a zero scale and zero values", () => {
  assert.deepEqual([...quantizeQ8_0(new Float32Array(32))], new Array(34).fill(0));
});

test("Q4_0 encodes a block as a hand-computed block, low nibbles first", () => {
  // The largest magnitude is -8 (the later +8 ties and loses), so d = -8 / -8 = 1 and q = min(15, trunc(x + 8.5)).
  const bytes = quantizeQ4_0(block([-8, 8, 0, 0.5, -0.5, 1.49, -3, 7, -7.6], [2, -2, 6.4]));
  assert.equal(bytes.length, 18);
  assert.deepEqual([...bytes.subarray(0, 2)], [0x00, 0x3c], "d = 1 as little-endian f16");
  // q for values 0..8: 0, 16→15, 8, 9, 8, 9, 5, 15, 0; for values 16..18: 10, 6, 14; all others 8.
  assert.deepEqual(
    [...bytes.subarray(2)],
    [0xa0, 0x6f, 0xe8, 0x89, 0x88, 0x89, 0x85, 0x8f, 0x80, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88],
  );
});

test("Q4_0 keeps the sign of the largest value in its scale", () => {
  const bytes = quantizeQ4_0(block([8, -8, 3, -3]));
  assert.deepEqual([...bytes.subarray(0, 2)], [0x00, 0xbc], "d = 8 / -8 = -1");
  assert.deepEqual([...bytes.subarray(2, 6)], [0x80, 0x8f, 0x85, 0x8b]);
  assert.deepEqual(
    [...dequantizeQ4_0(bytes).subarray(0, 4)],
    [8, -7, 3, -3],
    "the clamped opposite extreme loses one step",
  );
});

test("Q8_0 round trip stays within half a step plus the f16 rounding of the scale", () => {
  for (const std of [1, 0.02, 0.01]) {
    const values = randomValues(32 * 512, std, 7);
    const bytes = quantizeQ8_0(values);
    const restored = dequantizeQ8_0(bytes);
    let squaredError = 0;
    for (let b = 0; b < 512; b++) {
      const amax = Math.max(...values.subarray(b * 32, b * 32 + 32).map(Math.abs));
      const step = amax / 127;
      assert.ok(Math.abs(scaleOf(bytes, b * 34) - step) <= step * 2 ** -11, "scale is max|x| / 127 in f16");
      for (let j = b * 32; j < b * 32 + 32; j++) {
        const error = Math.abs(values[j]! - restored[j]!);
        // 0.5 for rounding q, 127 * 2^-11 for the f16 scale, a little for float32 arithmetic.
        assert.ok(error <= step * 0.563, `error ${error} exceeds the bound at ${j}, std ${std}`);
        squaredError += error ** 2;
      }
    }
    const rms = Math.sqrt(squaredError / values.length);
    assert.ok(rms < std * 0.01, `rms error ${rms} at std ${std}`);
  }
});

test("Q4_0 round trip stays within one step, and within half a step away from the clamped extreme", () => {
  for (const std of [1, 0.02, 0.01]) {
    const values = randomValues(32 * 512, std, 11);
    const bytes = quantizeQ4_0(values);
    const restored = dequantizeQ4_0(bytes);
    for (let b = 0; b < 512; b++) {
      const d = scaleOf(bytes, b * 18);
      const blockValues = values.subarray(b * 32, b * 32 + 32);
      const max = blockValues.reduce((best, value) => (Math.abs(value) > Math.abs(best) ? value : best), 0);
      assert.ok(Math.abs(d - max / -8) <= Math.abs(max / 8) * 2 ** -11, "scale is max / -8 in f16");
      for (let j = 0; j < 32; j++) {
        const value = blockValues[j]!;
        const error = Math.abs(value - restored[b * 32 + j]!);
        // Only values past 7.5 steps on the side opposite to max hit the clamp at 15.
        const isClamped = value / (max / -8) > 7.5;
        const bound = Math.abs(d) * (isClamped ? 1.01 : 0.51);
        assert.ok(error <= bound, `error ${error} exceeds ${bound} at block ${b} value ${j}, std ${std}`);
      }
      const maxIndex = blockValues.indexOf(max);
      assert.ok(Math.abs(restored[b * 32 + maxIndex]! - max) <= Math.abs(max) * 2 ** -10, "the largest value is kept");
    }
  }
});

test("quantizers reject partial blocks, and the dispatcher picks the format", () => {
  assert.throws(() => quantizeQ8_0(new Float32Array(33)), /multiple of 32/);
  assert.throws(() => quantizeQ4_0(new Float32Array(16)), /multiple of 32/);
  assert.throws(() => dequantizeQ4_0(new Uint8Array(19)), /whole 18-byte blocks/);
  const values = randomValues(64, 0.02, 3);
  assert.equal(quantize("Q8_0", values).length, 2 * QUANT_BLOCK_BYTES.Q8_0);
  assert.deepEqual(quantize("Q4_0", values), quantizeQ4_0(values));
});
