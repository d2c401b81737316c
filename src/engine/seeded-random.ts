/**
 * A small seedable PRNG: xoshiro128** (Blackman and Vigna) with its 128-bit state filled by splitmix32 from one
 * uint32 seed. The engine seeds each sampled token's native sampler with `seedAtPosition`, and speculative
 * verification draws from the same per-position streams, so both layers need it; it lives here, below spec, because
 * imports point down only.
 *
 * Why not `Math.random`: a request's seed must reproduce its output across runs and processes, so every uniform
 * the verifier draws has to come from a stream we own. xoshiro128** is 32-bit arithmetic only (`Math.imul`, shifts),
 * which keeps it exact and fast in JavaScript, and passes BigCrush; splitmix32 spreads nearby seeds (0, 1, 2, …)
 * into unrelated states so per-choice seeds do not yield correlated streams.
 */

/** Anything that hands out uniforms in [0, 1); the verifier takes this so tests can script the draws. */
export interface UniformSource {
  next(): number;
}

/** 2^-32: maps a uint32 onto [0, 1) with every value exactly representable. */
const UINT32_TO_UNIT = 1 / 0x1_0000_0000;

export class SeededRandom implements UniformSource {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is taken modulo 2^32 (`seed >>> 0`), so any integer is accepted. */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer; got ${seed}`);
    const mixer = splitmix32(seed >>> 0);
    this.s0 = mixer();
    this.s1 = mixer();
    this.s2 = mixer();
    this.s3 = mixer();
    // The all-zero state is xoshiro's one fixed point; splitmix32 cannot produce four zeros in a row, but be sure.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /**
   * A generator with the given raw xoshiro128** state, bypassing splitmix32; lets tests compare against the
   * reference implementation's published outputs.
   */
  static fromState(state: readonly [number, number, number, number]): SeededRandom {
    const random = new SeededRandom(0);
    [random.s0, random.s1, random.s2, random.s3] = state.map((word) => word >>> 0) as [number, number, number, number];
    if ((random.s0 | random.s1 | random.s2 | random.s3) === 0)
      throw new RangeError("xoshiro128** state must not be all zero");
    return random;
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform in [0, 1) with 32 bits of resolution, ample for acceptance tests and inverse-CDF draws. */
  next(): number {
    return this.nextUint32() * UINT32_TO_UNIT;
  }
}

/**
 * The seed of output position `index` of a request seeded `seed`: counter-based, so a request's random draws depend
 * on its seed and how far it has got, never on what happened before (a preemption, a sampler created anew).
 */
export function seedAtPosition(seed: number, index: number): number {
  return new SeededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0).nextUint32();
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix32 (the 32-bit finaliser from Wellons' hash prospector over a Weyl sequence); returns uint32 values. */
function splitmix32(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  };
}
