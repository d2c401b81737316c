/**
 * An exact in-memory vector index: every stored vector is compared with the query, the `k` best kept. The vectors
 * are expected at unit length (the embedding servers return them so), which makes the dot product the cosine.
 * Exact search is linear in the number of vectors: a few hundred thousand 1,024-dimension vectors per query are
 * milliseconds, enough for an example and for benchmarking the servers rather than the index.
 */

export interface SearchHit {
  /** The position of the vector in the order it was added. */
  readonly index: number;
  /** Dot product with the query: the cosine for unit vectors. */
  readonly score: number;
}

/** Rows stored before the first growth of the backing array. */
const INITIAL_CAPACITY_ROWS = 256;

export class VectorIndex {
  readonly dimension: number;
  #rows: Float32Array;
  #numRows = 0;

  constructor(dimension: number) {
    if (!Number.isInteger(dimension) || dimension < 1) throw new RangeError(`dimension must be ≥ 1, got ${dimension}`);
    this.dimension = dimension;
    this.#rows = new Float32Array(INITIAL_CAPACITY_ROWS * dimension);
  }

  get size(): number {
    return this.#numRows;
  }

  /** Appends vectors; their indexes continue from `size`. */
  add(vectors: readonly (readonly number[])[]): void {
    for (const vector of vectors) {
      if (vector.length !== this.dimension) {
        throw new RangeError(`vector ${this.#numRows} has ${vector.length} dimensions, the index ${this.dimension}`);
      }
      if ((this.#numRows + 1) * this.dimension > this.#rows.length) {
        const grown = new Float32Array(this.#rows.length * 2);
        grown.set(this.#rows);
        this.#rows = grown;
      }
      this.#rows.set(vector, this.#numRows * this.dimension);
      this.#numRows += 1;
    }
  }

  /** The `k` stored vectors with the largest dot product with `query`, best first (ties: lower index first). */
  search(query: readonly number[], k: number): SearchHit[] {
    if (query.length !== this.dimension) {
      throw new RangeError(`query has ${query.length} dimensions, the index ${this.dimension}`);
    }
    const q = Float32Array.from(query);
    const best = new TopK(Math.min(k, this.#numRows));
    for (let row = 0; row < this.#numRows; row++) {
      const offset = row * this.dimension;
      let dot = 0;
      for (let d = 0; d < this.dimension; d++) dot += (this.#rows[offset + d] ?? 0) * (q[d] ?? 0);
      best.offer(row, dot);
    }
    return best.sorted();
  }
}

/** The k best (index, score) pairs seen, in a binary min-heap whose root is the worst kept. */
class TopK {
  readonly #capacity: number;
  readonly #heap: SearchHit[] = [];

  constructor(capacity: number) {
    this.#capacity = Math.max(0, capacity);
  }

  offer(index: number, score: number): void {
    if (this.#capacity === 0) return;
    const heap = this.#heap;
    if (heap.length < this.#capacity) {
      heap.push({ index, score });
      this.#siftUp(heap.length - 1);
      return;
    }
    const worst = heap[0];
    if (worst === undefined || !isBetter({ index, score }, worst)) return;
    heap[0] = { index, score };
    this.#siftDown(0);
  }

  sorted(): SearchHit[] {
    return [...this.#heap].sort((a, b) => (isBetter(a, b) ? -1 : 1));
  }

  #siftUp(at: number): void {
    const heap = this.#heap;
    let child = at;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!isBetter(heap[parent]!, heap[child]!)) break;
      [heap[parent], heap[child]] = [heap[child]!, heap[parent]!];
      child = parent;
    }
  }

  #siftDown(at: number): void {
    const heap = this.#heap;
    let parent = at;
    for (;;) {
      let worst = parent;
      for (const child of [2 * parent + 1, 2 * parent + 2]) {
        if (child < heap.length && isBetter(heap[worst]!, heap[child]!)) worst = child;
      }
      if (worst === parent) return;
      [heap[parent], heap[worst]] = [heap[worst]!, heap[parent]!];
      parent = worst;
    }
  }
}

/** A higher score wins; at equal scores the earlier vector does, so results are deterministic. */
function isBetter(a: SearchHit, b: SearchHit): boolean {
  return a.score > b.score || (a.score === b.score && a.index < b.index);
}
