import assert from "node:assert/strict";
import { test } from "node:test";
import type { GrammarTrigger } from "../../../src/engine/engine.ts";
import { TriggerWatch } from "../../../src/engine/trigger-watch.ts";

const anywhere: GrammarTrigger = { text: "<tool_call>", isAtStartOnly: false, grammar: { gbnf: 'root ::= "a"' } };
const atStart: GrammarTrigger = { text: '{"name": "', isAtStartOnly: true, grammar: { gbnf: 'root ::= "b"' } };

function feed(watch: TriggerWatch, pieces: readonly string[]) {
  for (const [index, piece] of pieces.entries()) {
    const hit = watch.push(piece);
    if (hit !== null) return { index, trigger: hit.trigger, rest: hit.rest };
  }
  return null;
}

test("a trigger split across pieces is found in the piece that completes it, with the text after it", () => {
  const hit = feed(new TriggerWatch([anywhere]), ["Let me look. <to", "ol_c", 'all>\n{"na']);
  assert.deepEqual(hit, { index: 2, trigger: anywhere, rest: '\n{"na' });
});

test("text without a trigger never fires, however long", () => {
  const watch = new TriggerWatch([anywhere]);
  for (let i = 0; i < 1000; i++) assert.equal(watch.push("<tool_cal "), null);
});

test("a start-only trigger fires after leading blanks, and never once other text came first", () => {
  assert.deepEqual(feed(new TriggerWatch([atStart]), ["  \n", '{"na', 'me": "get']), {
    index: 2,
    trigger: atStart,
    rest: "get",
  });
  assert.equal(feed(new TriggerWatch([atStart]), ["Sure: ", '{"name": "get'])?.trigger ?? null, null);
  assert.equal(feed(new TriggerWatch([atStart]), ['{"city": "Paris"}'])?.trigger ?? null, null);
});

test("of two triggers in one piece the earlier wins", () => {
  const python: GrammarTrigger = { text: "<|python_tag|>", isAtStartOnly: false, grammar: { gbnf: 'root ::= "c"' } };
  const hit = feed(new TriggerWatch([python, atStart]), ['{"name": "f", "x": "<|python_tag|>']);
  assert.equal(hit?.trigger, atStart);
  assert.equal(hit?.rest, 'f", "x": "<|python_tag|>');
});

test("an empty trigger is refused", () => {
  assert.throws(() => new TriggerWatch([{ ...anywhere, text: "" }]), RangeError);
});
