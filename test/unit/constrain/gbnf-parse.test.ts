import assert from "node:assert/strict";
import { test } from "node:test";
import { type GbnfElement, GrammarError, parseGbnf } from "../../../src/constrain/gbnf/index.ts";
import { ALL_FIXTURES, JSON_GBNF } from "./gbnf-fixtures.ts";

const lit = (value: string): GbnfElement => ({ kind: "literal", value });
const ref = (name: string): GbnfElement => ({ kind: "rule-ref", name });
const rep = (element: GbnfElement, min: number, max: number | null): GbnfElement => ({
  kind: "repetition",
  element,
  min,
  max,
});
const cls = (isNegated: boolean, ...ranges: [number, number][]): GbnfElement => ({
  kind: "char-class",
  isNegated,
  ranges: ranges.map(([start, end]) => ({ start, end })),
});

function rootOf(text: string) {
  return parseGbnf(text).rules.get("root");
}

function parseError(text: string): GrammarError {
  try {
    parseGbnf(text);
  } catch (error) {
    if (error instanceof GrammarError) return error;
    throw error;
  }
  assert.fail(`expected a GrammarError for ${JSON.stringify(text)}`);
}

test("llama.cpp's grammars parse, with rules in definition order and the root named root", () => {
  const json = parseGbnf(JSON_GBNF);
  assert.equal(json.rootName, "root");
  assert.deepEqual([...json.rules.keys()], ["root", "value", "object", "array", "string", "number", "ws"]);
  for (const [name, text] of Object.entries(ALL_FIXTURES)) assert.ok(parseGbnf(text).rules.has("root"), name);
});

test("every kind of element parses to its exact AST node", () => {
  assert.deepEqual(
    rootOf(`root ::= "ab" [^a-z_] . item ("x" | "y" item) "c"? "d"* "e"+ "f"{2} "g"{1,} "h"{0,3}\nitem ::= "i"`),
    [
      [
        lit("ab"),
        cls(true, [0x61, 0x7a], [0x5f, 0x5f]),
        { kind: "any-char" },
        ref("item"),
        { kind: "group", alternatives: [[lit("x")], [lit("y"), ref("item")]] },
        rep(lit("c"), 0, 1),
        rep(lit("d"), 0, null),
        rep(lit("e"), 1, null),
        rep(lit("f"), 2, 2),
        rep(lit("g"), 1, null),
        rep(lit("h"), 0, 3),
      ],
    ],
  );
});

test("escapes decode to the code points llama.cpp gives them", () => {
  assert.deepEqual(rootOf(String.raw`root ::= "\x41\u00e9\U0001F600\t\n\r\\\"\[\]\-" [\x00-\x1F\]\-\\]`), [
    [lit('Aé😀\t\n\r\\"[]-'), cls(false, [0x00, 0x1f], [0x5d, 0x5d], [0x2d, 0x2d], [0x5c, 0x5c])],
  ]);
});

test("raw non-ASCII characters, and raw line breaks inside a literal, are taken as they are", () => {
  assert.deepEqual(rootOf('root ::= "こん\nに" [ぁ-ゟ]'), [[lit("こん\nに"), cls(false, [0x3041, 0x309f])]]);
});

test("a dash before the closing bracket is a character, not a range", () => {
  assert.deepEqual(rootOf("root ::= [a-] [-a] [+--]"), [
    [cls(false, [0x61, 0x61], [0x2d, 0x2d]), cls(false, [0x2d, 0x2d], [0x61, 0x61]), cls(false, [0x2b, 0x2d])],
  ]);
});

test("rule names are letters, digits and dashes, and may start with a digit", () => {
  const grammar = parseGbnf('root ::= 2nd-Rule\n2nd-Rule ::= "x"');
  assert.deepEqual([...grammar.rules.keys()], ["root", "2nd-Rule"]);
});

test("line breaks may follow ::= and |, and appear anywhere inside parentheses", () => {
  const text = 'root ::=\n  "a" |\n  ( "b"\n    "c" # comment\n  |\n  "d"\n  ) "e"? | "f"';
  assert.deepEqual(rootOf(text), [
    [lit("a")],
    [{ kind: "group", alternatives: [[lit("b"), lit("c")], [lit("d")]] }, rep(lit("e"), 0, 1)],
    [lit("f")],
  ]);
});

test("comments and CRLF line endings are skipped like whitespace", () => {
  const grammar = parseGbnf('# header\r\nroot ::= a # trailing\r\n\r\na ::= "x"\r\n# end');
  assert.deepEqual(grammar.rules.get("root"), [[ref("a")]]);
  assert.deepEqual(grammar.rules.get("a"), [[lit("x")]]);
});

test("a repetition operator may follow its operand after spaces, and operators stack", () => {
  assert.deepEqual(rootOf('root ::= "a" * "b"+? "c" { 1 , 2 }'), [
    [rep(lit("a"), 0, null), rep(rep(lit("b"), 1, null), 0, 1), rep(lit("c"), 1, 2)],
  ]);
});

test("an empty literal adds nothing and an empty alternative is an empty sequence", () => {
  assert.deepEqual(rootOf('root ::= | "" | "a" "" "b" | ()'), [
    [],
    [],
    [lit("a"), lit("b")],
    [{ kind: "group", alternatives: [[]] }],
  ]);
});

test("the root rule's name is an option", () => {
  const grammar = parseGbnf('start ::= "x"', { rootName: "start" });
  assert.equal(grammar.rootName, "start");
  assert.equal(parseError('start ::= "x"').message, 'grammar has no "root" rule');
});

test("a GrammarError carries its name, code, line and column", () => {
  const error = parseError('root ::= "a"\n  item ::= "b"\nx ::= "c" foo');
  assert.equal(error.name, "GrammarError");
  assert.equal(error.code, "PAGODA_ERR_GRAMMAR_UNDEFINED_RULE");
  assert.equal(error.line, 3);
  assert.equal(error.column, 11);
  assert.equal(error.message, 'undefined rule "foo" at line 3, column 11');
  assert.equal(error.limit, null);
});

test("malformed grammars are refused with what is wrong and where", () => {
  const cases: [string, string][] = [
    ['root ::= "abc', "unterminated string literal at line 1, column 10"],
    ["root ::= [abc", "unterminated character class at line 1, column 10"],
    ['root ::= ("a" "b"', 'expected ")" or "|", found end of input at line 1, column 18'],
    ['root ::= "a" )', 'unexpected ")" in rule "root" (expected an element, "|" or end of line) at line 1, column 14'],
    ['root = "a"', 'expected "::=" after rule name "root", found "=" at line 1, column 6'],
    ['::= "a"', 'expected a rule name, found ":" at line 1, column 1'],
    [
      'root ::= "a"\n  | "b"',
      'expected a rule name, found "|" (a rule continues on the next line only after "|" or inside parentheses) at line 2, column 3',
    ],
    [
      'root ::= "a"\n  "b"',
      'expected a rule name, found "\\"" (a rule continues on the next line only after "|" or inside parentheses) at line 2, column 3',
    ],
    [String.raw`root ::= "\q"`, 'unknown escape "\\q" at line 1, column 11'],
    [String.raw`root ::= "\x4"`, "expected 2 hex digits in escape at line 1, column 11"],
    [String.raw`root ::= "\U00110000"`, "escape names invalid code point U+110000 at line 1, column 11"],
    [String.raw`root ::= [\uD800]`, "escape names invalid code point U+D800 at line 1, column 11"],
    ["root ::= []", "empty character class at line 1, column 10"],
    ["root ::= [^]", "empty character class at line 1, column 10"],
    ["root ::= [z-a]", "character range ends before it starts at line 1, column 11"],
    ["root ::= *", 'nothing to repeat before "*" at line 1, column 10'],
    ['root ::= "a" | +', 'nothing to repeat before "+" at line 1, column 16'],
    ['root ::= ""?', 'nothing to repeat before "?" at line 1, column 12'],
    ['root ::= "a"{0}?', 'nothing to repeat before "?" at line 1, column 16'],
    ['root ::= "a"{,3}', 'expected a number after "{", found "," at line 1, column 14'],
    ['root ::= "a"{2 3}', 'expected "," or "}", found "3" at line 1, column 16'],
    ['root ::= "a"{2,3', 'expected "}", found end of input at line 1, column 17'],
    ['root ::= "a"{3,2}', "repetition {3,2} has its maximum below its minimum at line 1, column 13"],
    ['root ::= "a"\nroot ::= "b"', 'rule "root" is defined twice at line 2, column 1'],
    ['root ::= "a" é', 'unexpected "é" in rule "root" (expected an element, "|" or end of line) at line 1, column 14'],
  ];
  for (const [text, message] of cases) {
    assert.equal(parseError(text).message, message, JSON.stringify(text));
  }
});

test("a raw NUL or unpaired surrogate in the text is refused", () => {
  assert.equal(parseError('root ::= "a\u0000"').message, "NUL character (write it as \\x00) at line 1, column 12");
  assert.equal(parseError('root ::= "\uD800"').message, "unpaired surrogate at line 1, column 11");
});

test("token references are refused as unsupported", () => {
  for (const text of ["root ::= <[1000]>", "root ::= <think>", "root ::= !<[7]>*"]) {
    const error = parseError(text);
    assert.equal(error.code, "PAGODA_ERR_GRAMMAR_UNSUPPORTED");
    assert.equal(error.message, "token references (<…>, !<…>) are not supported at line 1, column 10");
  }
});

test("columns count code points, not UTF-16 units", () => {
  assert.equal(parseError('root ::= "😀😀" foo').column, 15);
});
