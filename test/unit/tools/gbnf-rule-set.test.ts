import assert from "node:assert/strict";
import { test } from "node:test";
import { matchesGbnf, parseGbnf } from "../../../src/constrain/gbnf/index.ts";
import { GbnfRuleSet } from "../../../src/tools/gbnf-rule-set.ts";

function grammarOf(set: GbnfRuleSet, root: string) {
  return parseGbnf(`root ::= ${root}\n${set.rules}`);
}

test("rules go under the prefix while names inside literals and classes stay as they are", () => {
  const set = new GbnfRuleSet();
  const root = set.add('root ::= "root ws" ws [a-z] item\nws ::= " "?\nitem ::= "item" ws', "p0-");
  assert.equal(root, "p0-root");
  assert.deepEqual([...parseGbnf(`root ::= ${root}\n${set.rules}`).rules.keys()].sort(), [
    "p0-item",
    "p0-root",
    "p0-ws",
    "root",
  ]);
  assert.ok(matchesGbnf(grammarOf(set, root), "root ws qitem "));
});

test("two grammars with the same rule names keep their own languages", () => {
  const set = new GbnfRuleSet();
  const first = set.add('root ::= "{" value "}"\nvalue ::= [0-9]+', "p0-");
  const second = set.add('root ::= "[" value "]"\nvalue ::= [a-z]+', "p1-");
  const grammar = grammarOf(set, `${first} | ${second}`);
  assert.ok(matchesGbnf(grammar, "{42}"));
  assert.ok(matchesGbnf(grammar, "[ab]"));
  assert.ok(!matchesGbnf(grammar, "{ab}"));
  assert.ok(!matchesGbnf(grammar, "[42]"));
});

test("an identical rule is shared, a recursive one is renamed consistently and never shared", () => {
  const set = new GbnfRuleSet();
  const text = 'root ::= list\nlist ::= "(" (item ws)* ")"\nitem ::= word | list\nword ::= [a-z]+\nws ::= " "?';
  const first = set.add(text, "p0-");
  const second = set.add(text, "p1-");
  const names = [...parseGbnf(`root ::= ${first} ${second}\n${set.rules}`).rules.keys()];
  assert.ok(names.includes("p0-word") && !names.includes("p1-word"), "the leaf rule is shared");
  assert.ok(names.includes("p1-list") && names.includes("p1-item"), "rules on a cycle are not");
  const grammar = grammarOf(set, second);
  assert.ok(matchesGbnf(grammar, "(a (b c ) d )"));
  assert.ok(!matchesGbnf(grammar, "(a (b c )"));
});

test("a prefix that is not a rule name is a bug and throws", () => {
  assert.throws(() => new GbnfRuleSet().add('root ::= "x"', "p_0"), RangeError);
});
