/**
 * The documents to index and the queries to ask: a folder of text files split into overlapping word windows, or a
 * deterministic synthetic corpus of seeded random words (labelled as such wherever it is printed), and queries cut
 * from the chunks themselves, so each synthetic query knows the chunk it came from.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { randomWords } from "../../bench/random-words.ts";

export interface SourceDocument {
  /** A file path relative to the corpus folder, or `synthetic/NNNN`. */
  readonly source: string;
  readonly text: string;
}

export interface Chunk {
  /** The chunk's position in the corpus's chunk list, which is also its position in the vector index. */
  readonly id: number;
  readonly source: string;
  readonly text: string;
}

export interface Query {
  readonly text: string;
  /** The chunk a synthetic query was cut from; null for a query someone wrote. */
  readonly sourceChunkId: number | null;
}

export interface ChunkOptions {
  /** Words per chunk. Defaults to 64. */
  readonly wordsPerChunk?: number;
  /** Words shared by neighbouring chunks of a document. Defaults to 16. */
  readonly overlapWords?: number;
}

export const DEFAULT_WORDS_PER_CHUNK = 64;
export const DEFAULT_OVERLAP_WORDS = 16;

/** File names read from a corpus folder (recursively). */
const TEXT_FILE = /\.(txt|md|markdown|rst)$/i;

/** Every text file under `dir`, in sorted path order. */
export async function readCorpus(dir: string): Promise<SourceDocument[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((entry) => entry.isFile() && TEXT_FILE.test(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .sort();
  const documents = await Promise.all(
    files.map(async (file) => ({ source: path.relative(dir, file), text: await readFile(file, "utf8") })),
  );
  if (documents.length === 0) throw new Error(`no .txt, .md or .rst files under ${dir}`);
  return documents;
}

/**
 * `numDocuments` synthetic documents of 3 to 10 sentences of 6 to 14 seeded-random words: the same documents for
 * the same seed, different ones for another seed (so repeated benchmark rounds do not hit servers' prompt caches).
 */
export function syntheticCorpus(seed: number, numDocuments: number): SourceDocument[] {
  const words = randomWords(seed);
  const sentence = (i: number): string => {
    const text = words(6 + (i % 9));
    return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
  };
  return Array.from({ length: numDocuments }, (_, d) => {
    const numSentences = 3 + ((d * 7) % 8);
    return {
      source: `synthetic/${String(d).padStart(4, "0")}`,
      text: Array.from({ length: numSentences }, (_, s) => sentence(d + s)).join(" "),
    };
  });
}

/** Windows of `wordsPerChunk` words, each starting `wordsPerChunk - overlapWords` words after the previous one. */
export function chunkText(text: string, options: ChunkOptions = {}): string[] {
  const size = Math.max(1, options.wordsPerChunk ?? DEFAULT_WORDS_PER_CHUNK);
  const overlap = Math.min(Math.max(0, options.overlapWords ?? DEFAULT_OVERLAP_WORDS), size - 1);
  const words = text.split(/\s+/).filter((word) => word !== "");
  const chunks: string[] = [];
  for (let start = 0; start < words.length; start += size - overlap) {
    chunks.push(words.slice(start, start + size).join(" "));
    if (start + size >= words.length) break;
  }
  return chunks;
}

export function chunkCorpus(documents: readonly SourceDocument[], options: ChunkOptions = {}): Chunk[] {
  const chunks: Chunk[] = [];
  for (const document of documents) {
    for (const text of chunkText(document.text, options)) {
      chunks.push({ id: chunks.length, source: document.source, text });
    }
  }
  return chunks;
}

/** `numQueries` queries of 6 to 10 consecutive words cut from seeded-random chunks, each knowing its chunk. */
export function queriesFromChunks(chunks: readonly Chunk[], seed: number, numQueries: number): Query[] {
  if (chunks.length === 0) return [];
  let state = seed >>> 0;
  // A small LCG is enough to pick chunks and offsets reproducibly.
  const next = (bound: number): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % bound;
  };
  return Array.from({ length: numQueries }, () => {
    const chunk = chunks[next(chunks.length)]!;
    const words = chunk.text.split(" ");
    const length = Math.min(words.length, 6 + next(5));
    const start = next(words.length - length + 1);
    return { text: words.slice(start, start + length).join(" "), sourceChunkId: chunk.id };
  });
}
