import assert from "node:assert/strict";
import { test } from "node:test";
import type { TokenId } from "../../../src/engine/engine.ts";
import { SeededRandom } from "../../../src/engine/seeded-random.ts";
import { type NgramOptions, proposeNgram } from "../../../src/spec/ngram-proposer.ts";
import { asTokenIds, tokenIds } from "../../helpers/ids.ts";

const options = (minNgram: number, maxNgram: number, numDraft: number): NgramOptions => ({
  minNgram,
  maxNgram,
  numDraft,
});

test("the most recent earlier occurrence of the suffix wins", () => {
  // [1, 2, 3] occurs ending at 2 (then 4, 1, 2) and ending at 6 (then 5, 1, 2).
  assert.deepEqual(proposeNgram(tokenIds(1, 2, 3, 4, 1, 2, 3, 5, 1, 2, 3), options(1, 3, 3)), [5, 1, 2]);
});

test("the longest matching n is tried first, even when a shorter match is more recent", () => {
  const tokens = tokenIds(1, 2, 3, 9, 5, 2, 3, 8, 1, 2, 3);
  // n = 3 matches only at the start (then 9); n = 2 matches more recently (then 8).
  assert.deepEqual(proposeNgram(tokens, options(1, 3, 3)), [9, 5, 2]);
  assert.deepEqual(proposeNgram(tokens, options(1, 2, 3)), [8, 1, 2]);
  assert.deepEqual(proposeNgram(tokens, options(2, 4, 1)), [9], "n = 4 has no match, so n = 3 answers");
});

test("proposals stop at numDraft and at the end of the sequence", () => {
  const tokens = tokenIds(4, 5, 6, 4, 5);
  assert.deepEqual(proposeNgram(tokens, options(1, 2, 2)), [6, 4]);
  assert.deepEqual(proposeNgram(tokens, options(1, 2, 10)), [6, 4, 5]);
  assert.deepEqual(proposeNgram(tokens, options(1, 2, 0)), []);
});

test("an occurrence may overlap the suffix, so a run predicts more of itself", () => {
  assert.deepEqual(proposeNgram(tokenIds(3, 7, 7, 7), options(1, 2, 5)), [7]);
  assert.deepEqual(proposeNgram(tokenIds(7, 7, 7, 7, 7), options(2, 3, 2)), [7]);
});

test("no earlier occurrence of at least minNgram tokens proposes nothing", () => {
  assert.deepEqual(proposeNgram(tokenIds(1, 2, 3, 4), options(1, 3, 4)), []);
  assert.deepEqual(proposeNgram(tokenIds(1, 2, 9, 2), options(2, 3, 4)), [], "only the 1-gram [2] recurs");
  assert.deepEqual(proposeNgram(tokenIds(1, 2, 9, 2), options(1, 3, 4)), [9, 2]);
  assert.deepEqual(proposeNgram(tokenIds(), options(1, 3, 4)), []);
  assert.deepEqual(proposeNgram(tokenIds(5), options(1, 3, 4)), []);
});

test("invalid options throw", () => {
  assert.throws(() => proposeNgram(tokenIds(1, 1), options(0, 2, 1)), RangeError);
  assert.throws(() => proposeNgram(tokenIds(1, 1), options(3, 2, 1)), RangeError);
  assert.throws(() => proposeNgram(tokenIds(1, 1), options(1, 2, -1)), RangeError);
});

/** The specification spelled out literally: each n in turn, each earlier start from the most recent. */
function referenceProposal(tokens: readonly number[], { minNgram, maxNgram, numDraft }: NgramOptions): number[] {
  for (let n = maxNgram; n >= minNgram; n -= 1) {
    if (tokens.length < n + 1) continue;
    const suffix = tokens.slice(tokens.length - n);
    for (let start = tokens.length - n - 1; start >= 0; start -= 1) {
      if (suffix.every((token, offset) => tokens[start + offset] === token)) {
        return tokens.slice(start + n, start + n + numDraft);
      }
    }
  }
  return [];
}

test("random sequences agree with a literal per-n search", () => {
  const random = new SeededRandom(77);
  for (let trial = 0; trial < 2000; trial += 1) {
    const alphabet = 1 + Math.floor(random.next() * 4);
    const tokens = asTokenIds(
      Array.from({ length: Math.floor(random.next() * 40) }, () => Math.floor(random.next() * alphabet)),
    );
    const minNgram = 1 + Math.floor(random.next() * 3);
    const opts = options(minNgram, minNgram + Math.floor(random.next() * 4), Math.floor(random.next() * 6));
    assert.deepEqual(
      proposeNgram(tokens, opts),
      referenceProposal(tokens, opts),
      `${JSON.stringify(tokens)} ${JSON.stringify(opts)}`,
    );
  }
});

/** The tokens as an array that counts its element reads, to bound the work of a search without timing it. */
function countingReads(tokens: readonly number[]): { readonly tokens: TokenId[]; readonly numReads: () => number } {
  let numReads = 0;
  const proxy = new Proxy([...tokens], {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) numReads += 1;
      return Reflect.get(target, key, receiver);
    },
  });
  return { tokens: proxy as TokenId[], numReads: () => numReads };
}

test("a 32k-token sequence is searched in one backward pass: at most 2 (maxNgram + 1) reads per position", () => {
  const random = new SeededRandom(3);
  const randomTokens = countingReads(Array.from({ length: 32_768 }, () => Math.floor(random.next() * 1000)));
  proposeNgram(randomTokens.tokens, options(1, 4, 5));
  assert.ok(randomTokens.numReads() <= 32_768 * 2 * (4 + 1), `${randomTokens.numReads()} reads`);
  // Every position of the run matches three tokens of the suffix and never four, so nothing stops the scan early.
  const run = countingReads([...new Array<number>(32_768).fill(7), 9, 7, 7, 7]);
  assert.deepEqual(proposeNgram(run.tokens, options(1, 5, 5)), [9, 7, 7, 7]);
  assert.ok(run.numReads() <= run.tokens.length * 2 * (5 + 1), `${run.numReads()} reads`);
});
