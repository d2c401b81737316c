/**
 * Seeded random word strings for retrieval benchmarks: chunks that share no long prefix, so no server's prompt cache
 * (llama-server reuses a slot's cached prefix) turns a run into cache hits. Deterministic per seed (mulberry32).
 */
const WORDS = (
  "the a girl boy cat dog bird frog tree ball sun park mom dad friend happy sad big little red blue saw went " +
  "played ran jumped found said wanted looked liked was had and then one day with in on to of her his they"
).split(" ");

/** A generator of `words`-word strings from its own seeded stream. */
export function randomWords(seed: number): (words: number) => string {
  let state = seed | 0;
  const random = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (words) => Array.from({ length: words }, () => WORDS[Math.floor(random() * WORDS.length)]).join(" ");
}
