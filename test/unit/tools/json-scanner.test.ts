import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { JsonScanner } from "../../../src/tools/json-scanner.ts";

/** Whether the scanner reads `text` as one whole JSON value (containers only: a bare number never ends). */
function scans(text: string): boolean {
  const scanner = new JsonScanner();
  for (const unit of text)
    for (const half of unit.length === 2 ? [unit[0]!, unit[1]!] : [unit]) {
      if (!scanner.feed(half)) return false;
    }
  return scanner.isDone;
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

test("every JSON document inside a container is read to its end", () => {
  fc.assert(
    fc.property(fc.json(), (json) => {
      assert.ok(scans(`[${json}]`), json);
      assert.ok(scans(`{"k": ${json}}`), json);
    }),
    { seed: 1, numRuns: 500 },
  );
});

test("the scanner agrees with JSON.parse on mutated documents", () => {
  const alphabet = fc.constantFrom(...'{}[]:,"\\ \n0123456789-+.eEtrufalsn\u0001u');
  fc.assert(
    fc.property(fc.json(), fc.nat(), fc.nat(), alphabet, (json, at, removeCount, inserted) => {
      const text = `[${json}]`;
      const position = at % (text.length + 1);
      const mutated = text.slice(0, position) + inserted + text.slice(position + (removeCount % 2));
      assert.equal(scans(mutated), parses(mutated), mutated);
    }),
    { seed: 2, numRuns: 3000 },
  );
});

test("keys and string values are reported decoded, at the unit that closes them", () => {
  const scanner = new JsonScanner();
  const keys: string[] = [];
  const strings: string[] = [];
  for (const unit of '{"n\\u0061me": "caf\\u00e9 \\"x\\"", "a": [1, "b"]}') {
    assert.ok(scanner.feed(unit));
    if (scanner.completedKey !== null) keys.push(scanner.completedKey);
    if (scanner.completedString !== null) strings.push(scanner.completedString);
  }
  assert.deepEqual(keys, ["name", "a"]);
  assert.deepEqual(strings, ['café "x"', "b"]);
  assert.ok(scanner.isDone);
});

test("whitespace between tokens is the only insignificant text", () => {
  const scanner = new JsonScanner();
  let compact = "";
  for (const unit of '{ "a b" :\n [ 1 , true ,\t" \\t " ] }') {
    assert.ok(scanner.feed(unit));
    if (scanner.isSignificant) compact += unit;
  }
  assert.equal(compact, '{"a b":[1,true," \\t "]}');
});

test("a refused unit leaves the scanner refusing, with a reason", () => {
  const scanner = new JsonScanner();
  for (const unit of '{"a": 01') scanner.feed(unit);
  assert.match(scanner.error ?? "", /leading zero/);
  assert.equal(scanner.feed("}"), false);
});
