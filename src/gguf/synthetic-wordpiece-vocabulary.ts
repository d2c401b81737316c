/**
 * A WordPiece vocabulary for synthetic BERT models, as convert_hf_to_gguf.py stores BERT's: the special tokens
 * verbatim, a word-initial piece with a "▁" (U+2581) prefix where BERT's vocab.txt has none, and a continuation piece
 * without the "##" that vocab.txt gives it. llama.cpp's WPM tokenizer lowercases, splits punctuation into words of
 * its own and matches each "▁word" greedily, longest piece first. Every letter and digit is both a word-initial and
 * a continuation piece, and every ASCII punctuation mark a word, so any ASCII text tokenizes without [UNK].
 */
import { COMMON_WORDS } from "./synthetic-vocabulary.ts";

const TOKEN_TYPE = { normal: 1, control: 3 } as const;
const SPACE = "\u2581";

/** The special tokens first, at the ids below. */
const SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] as const;
export const WORDPIECE_TOKEN_IDS = Object.freeze({ pad: 0, unknown: 1, cls: 2, sep: 3, mask: 4 });

const ALPHANUMERIC = [..."abcdefghijklmnopqrstuvwxyz0123456789"];
const PUNCTUATION = [..."!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"];
const SUFFIXES = ["s", "es", "ed", "ing", "er", "est", "ly", "tion", "ness", "ment", "able", "al"];

/** The special tokens, and the single characters that let any ASCII text tokenize. */
export const MIN_WORDPIECE_VOCAB_SIZE = SPECIAL_TOKENS.length + 2 * ALPHANUMERIC.length + PUNCTUATION.length;

export interface WordPieceVocabulary {
  tokens: string[];
  types: number[];
}

/** Pieces after the special tokens, in priority order: a smaller vocabulary keeps the first ones. */
function pieces(count: number): string[] {
  const chosen = new Set<string>();
  const add = (piece: string): void => {
    if (chosen.size < count) chosen.add(piece);
  };
  for (const char of [...ALPHANUMERIC, ...PUNCTUATION]) add(SPACE + char);
  for (const char of ALPHANUMERIC) add(char);
  for (const word of COMMON_WORDS) add(SPACE + word.toLowerCase());
  for (const suffix of SUFFIXES) add(suffix);
  const letters = ALPHANUMERIC.slice(0, 26);
  for (const first of letters) for (const second of letters) add(first + second);
  for (const first of letters) for (const second of letters) add(SPACE + first + second);
  // Filler as BERT's [unusedN] rows convert: a "▁[" never starts a word, as "[" is a word of its own, so these are
  // never produced by tokenizing and change no text's tokens.
  for (let i = 0; chosen.size < count; i++) add(`${SPACE}[unused${i}]`);
  return [...chosen];
}

/** Tokens and token types of a `vocabSize`-token WordPiece vocabulary (at least {@link MIN_WORDPIECE_VOCAB_SIZE}). */
export function buildWordPieceVocabulary(vocabSize: number): WordPieceVocabulary {
  if (!Number.isSafeInteger(vocabSize) || vocabSize < MIN_WORDPIECE_VOCAB_SIZE)
    throw new RangeError(`vocabSize must be at least ${MIN_WORDPIECE_VOCAB_SIZE}`);
  const tokens = [...SPECIAL_TOKENS, ...pieces(vocabSize - SPECIAL_TOKENS.length)];
  const types = tokens.map((_, id) => (id < SPECIAL_TOKENS.length ? TOKEN_TYPE.control : TOKEN_TYPE.normal));
  return { tokens, types };
}
