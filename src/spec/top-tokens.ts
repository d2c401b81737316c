/**
 * Picking the highest-logit tokens of a large vocabulary without sorting all of it.
 *
 * Order everywhere is "better first": higher logit first and, on equal logits, the lower token id first. llama.cpp
 * leaves ties unordered (`std::partial_sort` is not stable); fixing them by id makes our choice reproducible.
 */

/** Whether token `a` ranks before token `b` for these logits. */
export function ranksBefore(logits: Float32Array, a: number, b: number): boolean {
  const la = logits[a] as number;
  const lb = logits[b] as number;
  return la > lb || (la === lb && a < b);
}

/** Comparator for `Int32Array.prototype.sort`: better tokens first. */
function compareTokens(logits: Float32Array): (a: number, b: number) => number {
  return (a, b) => {
    const la = logits[a] as number;
    const lb = logits[b] as number;
    if (la !== lb) return la > lb ? -1 : 1;
    return a - b;
  };
}

/**
 * The best `k` tokens among `ids` (the whole vocabulary when null), best first.
 *
 * Cost O(n log k) with a size-k heap whose root is the worst token kept, so most tokens cost one comparison against
 * the root; when k is a large share of n a plain sort of everything is cheaper and gives the same answer.
 */
export function selectTopTokens(logits: Float32Array, ids: Int32Array | null, k: number): Int32Array {
  const n = ids === null ? logits.length : ids.length;
  const count = Math.min(Math.max(0, Math.floor(k)), n);
  if (count === 0) return new Int32Array(0);
  if (count * 4 >= n) return sortTokens(logits, ids).subarray(0, count);

  const heap = new Int32Array(count);
  let size = 0;
  for (let i = 0; i < n; i += 1) {
    const token = ids === null ? i : (ids[i] as number);
    if (size < count) {
      heap[size] = token;
      siftUp(logits, heap, size);
      size += 1;
    } else if (ranksBefore(logits, token, heap[0] as number)) {
      heap[0] = token;
      siftDown(logits, heap, 0, size);
    }
  }
  return heap.sort(compareTokens(logits));
}

/**
 * All of `ids` (the whole vocabulary when null), best first.
 *
 * Each token becomes one float64 key that orders exactly like `ranksBefore`: an order-preserving uint32 image of
 * its float32 logit (inverted so higher sorts first) times 2^idBits, plus its id. Both parts fit in 53 bits, and a
 * typed-array sort without a comparator runs natively, several times faster than calling back into JavaScript.
 */
export function sortTokens(logits: Float32Array, ids: Int32Array | null): Int32Array {
  const n = ids === null ? logits.length : ids.length;
  const idBits = Math.max(1, Math.ceil(Math.log2(logits.length + 1)));
  if (idBits > 21) {
    // Keys would pass 2^53; no vocabulary is this large, but stay correct if one is.
    const all = ids === null ? allTokenIds(n) : Int32Array.from(ids);
    return all.sort(compareTokens(logits));
  }
  const idScale = 2 ** idBits;
  const logitBits = new Uint32Array(1);
  const logitView = new Float32Array(logitBits.buffer);
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    const token = ids === null ? i : (ids[i] as number);
    // + 0 turns −0 into +0 so the two compare equal, as they do as numbers.
    logitView[0] = (logits[token] as number) + 0;
    const bits = logitBits[0] as number;
    // Negative floats order backwards as bit patterns: flip them all; positive ones only need the sign bit set.
    const ordered = bits & 0x8000_0000 ? ~bits >>> 0 : (bits | 0x8000_0000) >>> 0;
    keys[i] = (0xffff_ffff - ordered) * idScale + token;
  }
  keys.sort();
  const sorted = new Int32Array(n);
  for (let i = 0; i < n; i += 1) sorted[i] = (keys[i] as number) % idScale;
  return sorted;
}

/** 0, 1, …, n − 1. */
export function allTokenIds(n: number): Int32Array {
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i += 1) ids[i] = i;
  return ids;
}

// The heap keeps its worst token (by `ranksBefore`) at index 0: a parent never ranks before its children.

function siftUp(logits: Float32Array, heap: Int32Array, index: number): void {
  let child = index;
  while (child > 0) {
    const parent = (child - 1) >> 1;
    if (!ranksBefore(logits, heap[parent] as number, heap[child] as number)) return;
    swap(heap, parent, child);
    child = parent;
  }
}

function siftDown(logits: Float32Array, heap: Int32Array, index: number, size: number): void {
  let parent = index;
  for (;;) {
    const left = parent * 2 + 1;
    if (left >= size) return;
    const right = left + 1;
    let worst = left;
    if (right < size && ranksBefore(logits, heap[left] as number, heap[right] as number)) worst = right;
    if (!ranksBefore(logits, heap[parent] as number, heap[worst] as number)) return;
    swap(heap, parent, worst);
    parent = worst;
  }
}

function swap(heap: Int32Array, i: number, j: number): void {
  const held = heap[i] as number;
  heap[i] = heap[j] as number;
  heap[j] = held;
}
