import assert from "node:assert/strict";
import { test } from "node:test";
import { IncrementalDetokenizer, tokenTextAfter } from "../../src/scheduler/incremental-detokenizer.ts";
import { asTokenId, tokenIds } from "../helpers/ids.ts";

/**
 * A tiny SentencePiece-like vocabulary: "▁" marks a space, the first decoded piece loses its leading space
 * (as llama.cpp's detokenizer does), and tokens 10/11 are the two UTF-8 bytes of "é".
 */
const PIECES: Record<number, string> = { 1: "▁Once", 2: "▁upon", 3: "▁a", 4: "▁time", 5: ",", 6: "▁there" };
function detokenize(tokens: readonly number[]): string {
  const bytes: number[] = [];
  for (const token of tokens) {
    if (token === 10) bytes.push(0xc3);
    else if (token === 11) bytes.push(0xa9);
    else bytes.push(...Buffer.from((PIECES[token] ?? "?").replaceAll("▁", " ")));
  }
  return Buffer.from(bytes).toString("utf8").replace(/^ /, "");
}

test("the first generated token keeps its leading space when the prompt is given as context", () => {
  const withContext = new IncrementalDetokenizer(detokenize, tokenIds(1, 2, 3));
  assert.equal(withContext.push(asTokenId(4)), " time");
  assert.equal(withContext.push(asTokenId(5)), ",");
  assert.equal(withContext.push(asTokenId(6)), " there");
  assert.equal(withContext.emittedText, " time, there");
  const withoutContext = new IncrementalDetokenizer(detokenize);
  assert.equal(withoutContext.push(asTokenId(4)), "time", "llama.cpp drops the space of the first decoded token");
});

test("a character split across tokens is held until complete, and flushed at the end if never completed", () => {
  const detokenizer = new IncrementalDetokenizer(detokenize, tokenIds(3));
  assert.equal(detokenizer.push(asTokenId(10)), "");
  assert.equal(detokenizer.push(asTokenId(11)), "é");
  assert.equal(detokenizer.push(asTokenId(10)), "");
  assert.equal(detokenizer.flush(), "\uFFFD");
  assert.equal(detokenizer.flush(), "", "nothing is emitted twice");
  assert.equal(detokenizer.emittedText, "é\uFFFD");
});

test("a token's own text after its predecessor keeps its leading space", () => {
  assert.equal(tokenTextAfter(detokenize, asTokenId(3), asTokenId(4)), " time");
  assert.equal(tokenTextAfter(detokenize, null, asTokenId(4)), "time");
});
