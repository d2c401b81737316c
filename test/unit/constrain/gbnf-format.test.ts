import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { formatGbnf, parseGbnf } from "../../../src/constrain/gbnf/index.ts";
import { grammarArbitrary } from "./gbnf-arbitrary.ts";
import { ALL_FIXTURES, JSON_GBNF } from "./gbnf-fixtures.ts";

test("formatting writes one rule per line in canonical form", () => {
  assert.equal(
    formatGbnf(parseGbnf(JSON_GBNF)),
    [
      "root ::= object",
      'value ::= object | array | string | number | ("true" | "false" | "null") ws',
      'object ::= "{" ws (string ":" ws value ("," ws string ":" ws value)*)? "}" ws',
      'array ::= "[" ws (value ("," ws value)*)? "]" ws',
      String.raw`string ::= "\"" ([^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}))* "\"" ws`,
      String.raw`number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [\-+]? [0-9] [1-9]{0,15})? ws`,
      String.raw`ws ::= "" | " " | "\n" [ \t]{0,20}`,
      "",
    ].join("\n"),
  );
});

test("formatting escapes everything outside printable ASCII and the characters that are special in context", () => {
  const grammar = parseGbnf(String.raw`root ::= "é😀\x00\x7F\"\\-]^" [a^\-\]\\b-z\x0B] [^^]`);
  assert.equal(
    formatGbnf(grammar),
    `${String.raw`root ::= "\xE9\U0001F600\x00\x7F\"\\-]^" [a\x5E\-\]\\b-z\x0B] [^\x5E]`}\n`,
  );
});

test("repetition bounds are written in their shortest form", () => {
  const grammar = parseGbnf('root ::= "a"{0,} "b"{1,} "c"{0,1} "d"{2,2} "e"{2,} "f"{0,3} "g"{0} "h"+?');
  assert.equal(formatGbnf(grammar), 'root ::= "a"* "b"+ "c"? "d"{2} "e"{2,} "f"{0,3} "g"{0} "h"+?\n');
});

test("an empty alternative at the end of a rule is written as an empty literal", () => {
  const grammar = parseGbnf('root ::= "a" opt\nopt ::= "b" |\n  "c" |');
  assert.equal(formatGbnf(grammar), 'root ::= "a" opt\nopt ::= "b" | "c" | ""\n');
});

test("parsing formatted text gives back the same grammar for every fixture", () => {
  for (const [name, text] of Object.entries(ALL_FIXTURES)) {
    const grammar = parseGbnf(text);
    const formatted = formatGbnf(grammar);
    assert.deepEqual(parseGbnf(formatted), grammar, name);
    assert.equal(formatGbnf(parseGbnf(formatted)), formatted, name);
  }
});

test("formatted text keeps a custom root only through the rootName option", () => {
  const grammar = parseGbnf('start ::= "x"', { rootName: "start" });
  assert.deepEqual(parseGbnf(formatGbnf(grammar), { rootName: "start" }), grammar);
});

test("any valid grammar survives formatting and parsing unchanged (property)", () => {
  fc.assert(
    fc.property(grammarArbitrary(), (grammar) => {
      assert.deepEqual(parseGbnf(formatGbnf(grammar)), grammar);
    }),
    { numRuns: 300, seed: 20240601 },
  );
});
