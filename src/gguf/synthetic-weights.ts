/**
 * Deterministic random tensor values for synthetic models. Each tensor gets its own stream, keyed by the seed and
 * its name, so values do not depend on which tensors come before it or on how the stream is cut into chunks.
 */

/** Standard deviation of random weight matrices; small enough that activations stay finite through many layers. */
export const WEIGHT_STD = 0.02;

/** Values per chunk when a tensor is streamed; a few MB keeps memory flat for tensors of any size. */
const CHUNK_VALUES = 1 << 20;

/** STEP is mulberry32's increment: its state after n draws is seed + n * STEP, and each draw mixes that state. */
const MULBERRY32_STEP = 0x6d2b79f5;

/** mulberry32's output for one state: a uniform float in [0, 1). */
function mulberry32Mix(state: number): number {
  let t = Math.imul(state ^ (state >>> 15), state | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/**
 * Fills `out` with Irwin-Hall values (four uniforms summed in order) and returns the PRNG state after them.
 * A plain loop rather than a closure per draw: this is the hot path of writing a multi-GB model.
 */
function fillIrwinHall(out: Float32Array, state: number, scale: number): number {
  let s = state;
  for (let i = 0; i < out.length; i++) {
    s = (s + MULBERRY32_STEP) >>> 0;
    const a = mulberry32Mix(s);
    s = (s + MULBERRY32_STEP) >>> 0;
    const b = mulberry32Mix(s);
    s = (s + MULBERRY32_STEP) >>> 0;
    const c = mulberry32Mix(s);
    s = (s + MULBERRY32_STEP) >>> 0;
    const d = mulberry32Mix(s);
    out[i] = (a + b + c + d - 2) * scale;
  }
  return s;
}

/** FNV-1a, so each tensor gets its own stream independent of generation order. */
function hashName(seed: number, name: string): number {
  let hash = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

/**
 * Bell-shaped values with standard deviation `std`, `count` in all, in chunks of whole rows of `rowLength`
 * values (about a million values each). Irwin-Hall (sum of four uniforms) is used instead of Box-Muller because
 * it needs no transcendental functions, keeping files byte-identical across JS engines.
 */
export function* syntheticWeights(
  name: string,
  count: number,
  rowLength: number,
  seed: number,
  std: number,
): Generator<Float32Array> {
  let state = hashName(seed, name);
  const scale = std * Math.sqrt(3);
  const chunkValues = Math.max(1, Math.floor(CHUNK_VALUES / rowLength)) * rowLength;
  for (let start = 0; start < count; start += chunkValues) {
    const out = new Float32Array(Math.min(chunkValues, count - start));
    state = fillIrwinHall(out, state, scale);
    yield out;
  }
}
