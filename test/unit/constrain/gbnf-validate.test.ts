import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DEFAULT_GBNF_LIMITS,
  GrammarError,
  type ParseGbnfOptions,
  parseGbnf,
  resolveGbnfLimits,
} from "../../../src/constrain/gbnf/index.ts";

function parseError(text: string, options?: ParseGbnfOptions): GrammarError {
  try {
    parseGbnf(text, options);
  } catch (error) {
    if (error instanceof GrammarError) return error;
    throw error;
  }
  assert.fail(`expected a GrammarError for ${JSON.stringify(text.slice(0, 80))}`);
}

function assertLimit(text: string, limit: string, options?: ParseGbnfOptions): GrammarError {
  const error = parseError(text, options);
  assert.equal(error.code, "PAGODA_ERR_GRAMMAR_LIMIT", error.message);
  assert.equal(error.limit, limit);
  return error;
}

test("a reference to an undefined rule is refused at the reference", () => {
  const error = parseError('root ::= item\nitem ::= "a" (other | "b")');
  assert.equal(error.code, "PAGODA_ERR_GRAMMAR_UNDEFINED_RULE");
  assert.equal(error.message, 'undefined rule "other" at line 2, column 15');
});

test("a grammar without its root rule is refused", () => {
  const error = parseError('item ::= "a"');
  assert.equal(error.code, "PAGODA_ERR_GRAMMAR_MISSING_ROOT");
  assert.equal(error.message, 'grammar has no "root" rule');
});

test("direct left recursion is refused, naming the cycle", () => {
  const error = parseError('root ::= "x" | root "a"');
  assert.equal(error.code, "PAGODA_ERR_GRAMMAR_LEFT_RECURSION");
  assert.equal(error.message, 'left recursion: rule "root" can start with itself (root -> root) at line 1, column 16');
});

test("indirect left recursion is refused, naming the cycle", () => {
  const error = parseError(
    'root ::= expr\nexpr ::= term "+" expr | term\nterm ::= "(" expr ")" | factor\nfactor ::= expr "*" | "1"',
  );
  assert.equal(
    error.message,
    'left recursion: rule "expr" can start with itself (expr -> term -> factor -> expr) at line 4, column 12',
  );
});

test("left recursion through nullable prefixes, groups and repetitions is refused", () => {
  const texts = [
    'root ::= ws root "a" | "b"\nws ::= " " |',
    'root ::= ("x"? | "y"*) root "a" | "b"',
    'root ::= a\na ::= b{0,1} c "!"\nb ::= "b"\nc ::= (opt opt a)+ | "c"\nopt ::= "o"?',
    'root ::= ("a" | root)+ "z"',
    'root ::= "b" | root{1} "c"',
  ];
  for (const text of texts) assert.equal(parseError(text).code, "PAGODA_ERR_GRAMMAR_LEFT_RECURSION", text);
});

test("recursion after a non-nullable prefix is accepted", () => {
  const grammar = parseGbnf('root ::= "(" root ")" | "x" root? | ws "y" root\nws ::= " "');
  assert.equal(grammar.rules.size, 2);
  parseGbnf('root ::= "b" | root{0} "c"');
});

test("repeating an expression that can match the empty string is refused", () => {
  const texts = [
    'root ::= ("a"?)*',
    'root ::= ws+ "x"\nws ::= [ ]*',
    'root ::= ("a" | ""){2,3}',
    'root ::= ("a"?){2}',
    'root ::= ((("a")?)){1,}',
    "root ::= ()*",
    'root ::= ("a"* "b"?)+',
  ];
  for (const text of texts) {
    const error = parseError(text);
    assert.equal(error.code, "PAGODA_ERR_GRAMMAR_NULLABLE_REPETITION", text);
    assert.match(error.message, /^repetition of an expression that can match the empty string at line 1, column \d+$/);
  }
});

test("an optional or single copy of a nullable expression is accepted", () => {
  for (const text of ['root ::= ("a"?)?', 'root ::= ("a"?){0,1} ("b"*){1}', 'root ::= ("a"?){0}', 'root ::= ("a"+)+']) {
    assert.ok(parseGbnf(text).rules.has("root"), text);
  }
});

test("the limits' defaults are the documented ones, and options override them", () => {
  assert.deepEqual(DEFAULT_GBNF_LIMITS, {
    maxTextLength: 262144,
    maxRules: 4096,
    maxNestingDepth: 64,
    maxRepetitionCount: 1000,
    maxExpandedElements: 1048576,
    maxLeftRecursionCheckSteps: 1000000,
  });
  assert.equal(resolveGbnfLimits({ maxRules: 5 }).maxRules, 5);
});

test("maxRepetitionCount is clamped to llama.cpp's threshold of 2000, and limits must be positive integers", () => {
  assert.equal(resolveGbnfLimits({ maxRepetitionCount: 1_000_000 }).maxRepetitionCount, 2000);
  assert.throws(() => resolveGbnfLimits({ maxRules: 0 }), RangeError);
  assert.throws(() => resolveGbnfLimits({ maxNestingDepth: 1.5 }), RangeError);
});

test("a text longer than maxTextLength is refused before parsing", () => {
  const error = assertLimit('root ::= "aaaaaaaaaa"', "maxTextLength", { maxTextLength: 20 });
  assert.equal(error.message, "grammar is 21 characters long, more than maxTextLength (20)");
  assert.equal(error.line, null);
});

test("more rules than maxRules are refused at the first rule past the limit", () => {
  const error = assertLimit('root ::= a\na ::= b\nb ::= "x"', "maxRules", { maxRules: 2 });
  assert.equal(error.message, "more than maxRules (2) rules at line 3, column 1");
});

test("nesting of groups and repetition operators deeper than maxNestingDepth is refused", () => {
  parseGbnf('root ::= (("a"))', { maxNestingDepth: 2 });
  assert.equal(
    assertLimit('root ::= ((("a")))', "maxNestingDepth", { maxNestingDepth: 2 }).message,
    "nesting of groups and repetitions deeper than maxNestingDepth (2) at line 1, column 12",
  );
  parseGbnf('root ::= ("a"+)', { maxNestingDepth: 2 });
  assertLimit('root ::= ("a"+)?', "maxNestingDepth", { maxNestingDepth: 2 });
  assertLimit('root ::= "a"+???', "maxNestingDepth", { maxNestingDepth: 3 });
});

test("repetition counts above maxRepetitionCount are refused", () => {
  parseGbnf('root ::= "a"{1000} "b"{0,1000}');
  assert.equal(
    assertLimit('root ::= "a"{1001}', "maxRepetitionCount").message,
    "repetition count above maxRepetitionCount (1000) at line 1, column 13",
  );
  assertLimit('root ::= "a"{0,1001}', "maxRepetitionCount");
  assertLimit('root ::= "a"{2,}', "maxRepetitionCount", { maxRepetitionCount: 1 });
  assertLimit('root ::= "a"{99999999999999999999999999}', "maxRepetitionCount");
});

test("repetitions llama.cpp refuses for generating too many rules are refused", () => {
  parseGbnf('root ::= ("a" "b"){0,1999}', { maxRepetitionCount: 2000 });
  const error = assertLimit('root ::= ("a"? "b"){0,1000}', "nativeRepetitionThreshold");
  assert.equal(
    error.message,
    "repetition too large for llama.cpp: 2 rule(s) repeated 1000 times reaches its threshold of 2000 at line 1, column 20",
  );
  assertLimit('root ::= "a"{0,50}{0,40}', "nativeRepetitionThreshold");
  // Names first seen inside a group count as rules it generates, as in llama.cpp.
  assertLimit('root ::= (x y z){0,500}\nx ::= "x"\ny ::= "y"\nz ::= "z"', "nativeRepetitionThreshold");
  parseGbnf('x ::= "x"\ny ::= "y"\nz ::= "z"\nroot ::= (x y z){0,500}');
});

test("grammars that llama.cpp would expand past maxExpandedElements are refused", () => {
  parseGbnf('root ::= "abcdefghij"{1000}');
  const error = assertLimit('root ::= "abcdefghij"{1000}', "maxExpandedElements", { maxExpandedElements: 9999 });
  assert.equal(
    error.message,
    "grammar expands to more than maxExpandedElements (9999) elements in llama.cpp at line 1, column 22",
  );
  assertLimit(`root ::= ${'"abcdefghij"{1000} '.repeat(200)}`, "maxExpandedElements");
});

test("grammars whose left-recursion check would take exponential time in llama.cpp are refused", () => {
  const doubling = (numRules: number) => {
    let text = "root ::= a0\n";
    for (let index = 0; index < numRules; index++) text += `a${index} ::= a${index + 1} | a${index + 1}\n`;
    return `${text}a${numRules} ::= "x"\n`;
  };
  parseGbnf(doubling(12));
  const error = assertLimit(doubling(60), "maxLeftRecursionCheckSteps");
  assert.equal(
    error.message,
    "llama.cpp's left-recursion check would take more than maxLeftRecursionCheckSteps (1000000) steps on this grammar",
  );
  assertLimit(doubling(12), "maxLeftRecursionCheckSteps", { maxLeftRecursionCheckSteps: 1000 });
});

test("a megabyte of open parentheses fails fast on a limit, without a stack overflow", () => {
  const text = `root ::= ${"(".repeat(1 << 20)}`;
  assertLimit(text, "maxTextLength");
  assertLimit(text, "maxNestingDepth", { maxTextLength: 2 << 20 });
});

test("a megabyte of repetition operators fails on the nesting limit", () => {
  assertLimit(`root ::= "a"${"+".repeat(1 << 20)}`, "maxNestingDepth", { maxTextLength: 2 << 20 });
});

test("a hundred thousand alternatives parse", () => {
  const text = `root ::= ${Array.from({ length: 100_000 }, (_, index) => `"${index}"`).join(" | ")}`;
  const grammar = parseGbnf(text, { maxTextLength: 1 << 20 });
  assert.equal(grammar.rules.get("root")?.length, 100_000);
});

test("a chain of thousands of rules, each starting with the next, is checked without recursion", () => {
  const numRules = 4000;
  let text = "root ::= r0\n";
  for (let index = 0; index < numRules; index++) text += `r${index} ::= r${index + 1} "x"\n`;
  const grammar = parseGbnf(`${text}r${numRules} ::= "end"\n`);
  assert.equal(grammar.rules.size, numRules + 2);
  const cyclic = `${text}r${numRules} ::= root\n`;
  assert.equal(parseError(cyclic).code, "PAGODA_ERR_GRAMMAR_LEFT_RECURSION");
});

test("hostile unterminated and undefined inputs fail with the right error", () => {
  assert.equal(
    parseError(`root ::= "${"a".repeat(200_000)}`).message,
    "unterminated string literal at line 1, column 10",
  );
  assert.equal(parseError(`root ::= [${"a".repeat(200_000)}`).code, "PAGODA_ERR_GRAMMAR_SYNTAX");
  const references = Array.from({ length: 20_000 }, (_, index) => `r${index}`).join(" ");
  assert.equal(parseError(`root ::= ${references}`).message, 'undefined rule "r0" at line 1, column 10');
});
