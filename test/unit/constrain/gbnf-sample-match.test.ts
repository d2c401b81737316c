import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { GrammarError, matchesGbnf, parseGbnf, sampleGbnf } from "../../../src/constrain/gbnf/index.ts";
import { mulberry32 } from "../../helpers/mulberry32.ts";
import { grammarArbitrary } from "./gbnf-arbitrary.ts";
import { ALL_FIXTURES, ARITHMETIC_GBNF, CHESS_GBNF, JSON_GBNF, MIXED_GBNF } from "./gbnf-fixtures.ts";

test("the JSON grammar accepts exactly the JSON texts it describes", () => {
  const json = parseGbnf(JSON_GBNF);
  const accepted = ['{"a": [1, -2.5e3, "x\\n\\u00e9"], "b": {}}', "{}", '{ "k" : null }\n', '{"x":true} '];
  const rejected = [
    '{"x":true}  ',
    "",
    "[]",
    "{",
    '{"a": 01}',
    '{"a" 1}',
    '{"a": "\u0001"}',
    '{"a": [1,]}',
    "{} x",
    '{"a": "\\q"}',
  ];
  for (const text of accepted) assert.equal(matchesGbnf(json, text), true, text);
  for (const text of rejected) assert.equal(matchesGbnf(json, text), false, text);
});

test("the arithmetic and chess grammars accept their examples and refuse near misses", () => {
  const arithmetic = parseGbnf(ARITHMETIC_GBNF);
  assert.equal(matchesGbnf(arithmetic, "(a1 +2)*x = 7\n"), true);
  assert.equal(matchesGbnf(arithmetic, "(a1 +2)*x = 7"), false);
  assert.equal(matchesGbnf(arithmetic, "(a1 + 2)*x = 7\n"), false);
  assert.equal(matchesGbnf(arithmetic, "1a = 7\n"), false);
  const chess = parseGbnf(CHESS_GBNF);
  assert.equal(matchesGbnf(chess, "1. e4 e5\n2. Nf3 Nc6\n3. O-O-O exd5+\n"), true);
  assert.equal(matchesGbnf(chess, "1. e4 e5\n"), false);
  assert.equal(matchesGbnf(chess, "1. e9 e5\n2. Nf3 Nc6\n"), false);
});

test("matching works on code points: non-ASCII ranges, negated classes and any-char", () => {
  const mixed = parseGbnf(MIXED_GBNF);
  const accepted = ["héllo x\r\n", '😀 a\t"😀" <\u0007> !!\r\n', "ΑΩ <a>\r\n", "こん w !!!\r\n"];
  const rejected = ['ΑΩ "ab"\r\n', "こん w1 w2 w3 w4\r\n", "héllo\r\n", "Α x\r\n", "héllo x\n"];
  for (const text of accepted) assert.equal(matchesGbnf(mixed, text), true, text);
  for (const text of rejected) assert.equal(matchesGbnf(mixed, text), false, text);
});

test("bounded repetitions match exactly their range of counts", () => {
  const grammar = parseGbnf('root ::= "a"{2,4} "b"{3} ("c" "d"?){1,}');
  const results = ["a", "aa", "aaaa", "aaaaa"].map((prefix) => matchesGbnf(grammar, `${prefix}bbbccdc`));
  assert.deepEqual(results, [false, true, true, false]);
  assert.equal(matchesGbnf(grammar, "aabbcd"), false);
  assert.equal(matchesGbnf(grammar, "aabbb"), false);
});

test("deeply nested input is matched without recursion", () => {
  const grammar = parseGbnf('root ::= "(" root ")" | "x"');
  const depth = 20_000;
  assert.equal(matchesGbnf(grammar, `${"(".repeat(depth)}x${")".repeat(depth)}`), true);
  assert.equal(matchesGbnf(grammar, `${"(".repeat(depth)}x${")".repeat(depth - 1)}`), false);
});

test("matching past its step budget throws a GrammarError", () => {
  const grammar = parseGbnf('root ::= ("a" | "a" "a")+');
  assert.throws(
    () => matchesGbnf(grammar, "a".repeat(500), { maxSteps: 1000 }),
    (error: unknown) =>
      error instanceof GrammarError &&
      error.code === "PAGODA_ERR_GRAMMAR_MATCH_BUDGET" &&
      error.message === "matching took more than 1000 steps",
  );
});

test("every sample from every fixture is accepted by the matcher", () => {
  for (const [name, text] of Object.entries(ALL_FIXTURES)) {
    const grammar = parseGbnf(text);
    let numSampled = 0;
    for (let seed = 0; seed < 200; seed++) {
      const sample = sampleGbnf(grammar, mulberry32(seed));
      if (sample === null) continue;
      numSampled++;
      assert.equal(matchesGbnf(grammar, sample), true, `${name} seed ${seed}: ${JSON.stringify(sample)}`);
    }
    assert.ok(numSampled >= 190, `${name}: only ${numSampled} of 200 samples finished`);
  }
});

test("samples of the JSON grammar are JSON objects", () => {
  const json = parseGbnf(JSON_GBNF);
  for (let seed = 0; seed < 200; seed++) {
    const sample = sampleGbnf(json, mulberry32(seed));
    if (sample !== null) assert.equal(typeof JSON.parse(sample), "object", sample);
  }
});

test("a sample is a function of the grammar and the random sequence", () => {
  const json = parseGbnf(JSON_GBNF);
  assert.equal(sampleGbnf(json, mulberry32(42)), sampleGbnf(json, mulberry32(42)));
  const distinct = new Set(Array.from({ length: 20 }, (_, seed) => sampleGbnf(json, mulberry32(seed))));
  assert.ok(distinct.size >= 15, `only ${distinct.size} distinct samples`);
});

test("sampled characters stay inside their class, including negated and non-ASCII classes", () => {
  const grammar = parseGbnf(String.raw`root ::= [^\x00-\x7F]{50} [\u0100-\u0102]{50} .{50} [^\x00-\U0010FFFF]?`);
  for (let seed = 0; seed < 20; seed++) {
    const codePoints = Array.from(sampleGbnf(grammar, mulberry32(seed)) ?? "", (char) => char.codePointAt(0)!);
    assert.equal(codePoints.length, 150);
    assert.ok(codePoints.slice(0, 50).every((value) => value > 0x7f && (value < 0xd800 || value > 0xdfff)));
    assert.ok(codePoints.slice(50, 100).every((value) => value >= 0x100 && value <= 0x102));
  }
});

test("classes that allow printable ASCII are mostly sampled from it", () => {
  const grammar = parseGbnf(String.raw`root ::= [^"\\\x7F\x00-\x1F]{100}`);
  const sample = sampleGbnf(grammar, mulberry32(1)) ?? "";
  const numPrintable = Array.from(sample).filter((char) => char >= " " && char <= "~").length;
  assert.ok(numPrintable >= 75, `${numPrintable} of 100 printable`);
});

test("sampling returns null when no derivation fits the depth or length bounds", () => {
  const chain = parseGbnf('root ::= a\na ::= b\nb ::= c\nc ::= "x"');
  assert.equal(sampleGbnf(chain, mulberry32(1), { maxDepth: 3 }), null);
  assert.equal(sampleGbnf(chain, mulberry32(1), { maxDepth: 4 }), "x");
  assert.equal(sampleGbnf(parseGbnf('root ::= "a"{100}'), mulberry32(1), { maxLength: 10 }), null);
  assert.equal(sampleGbnf(parseGbnf("root ::= [^\\x00-\\U0010FFFF]"), mulberry32(1)), null);
});

test("sampling a deeply recursive grammar terminates by preferring shallow alternatives", () => {
  const grammar = parseGbnf('root ::= "[" root root root "]" | "[" root "]" | "x"');
  for (let seed = 0; seed < 50; seed++) {
    const sample = sampleGbnf(grammar, mulberry32(seed), { maxDepth: 40, maxLength: 100_000 });
    assert.notEqual(sample, null, `seed ${seed}`);
    assert.equal(matchesGbnf(grammar, sample!), true);
  }
});

test("samples of any valid grammar are accepted by the matcher (property)", () => {
  fc.assert(
    fc.property(grammarArbitrary(), fc.integer(), (grammar, seed) => {
      const sample = sampleGbnf(grammar, mulberry32(seed));
      if (sample !== null) assert.equal(matchesGbnf(grammar, sample), true, JSON.stringify(sample));
    }),
    { numRuns: 300, seed: 7 },
  );
});
