import assert from "node:assert/strict";
import { test } from "node:test";
import {
  checkStop,
  findStopString,
  heldBackLength,
  isStopToken,
  lengthStop,
} from "../../src/scheduler/stop-checker.ts";
import { asTokenId, tokenIds } from "../helpers/ids.ts";

test("an end-of-generation token stops unless ignore_eos is set", () => {
  assert.equal(isStopToken({ token: asTokenId(2), isEndOfGeneration: true, stopTokens: [], ignoreEos: false }), true);
  assert.equal(isStopToken({ token: asTokenId(2), isEndOfGeneration: true, stopTokens: [], ignoreEos: true }), false);
  assert.equal(
    isStopToken({ token: asTokenId(7), isEndOfGeneration: false, stopTokens: tokenIds(7), ignoreEos: true }),
    true,
  );
  assert.equal(
    isStopToken({ token: asTokenId(8), isEndOfGeneration: false, stopTokens: tokenIds(7), ignoreEos: false }),
    false,
  );
});

test("the earliest stop string that ends in the new text is found", () => {
  assert.deepEqual(findStopString("hello world", ["wor", "o w"], 5), { index: 4, stop: "o w" });
  assert.deepEqual(
    findStopString("hello world", ["wor", "lo"], 5),
    { index: 6, stop: "wor" },
    '"lo" ended before the new text',
  );
  assert.deepEqual(findStopString("hello world", ["wor"], 8), { index: 6, stop: "wor" });
  assert.equal(
    findStopString("hello world", ["hello"], 6),
    null,
    "a match wholly before the new text is not reported again",
  );
  assert.equal(findStopString("abc", [""], 0), null);
});

test("a stop string spanning two appends is found", () => {
  assert.deepEqual(findStopString("ab|END", ["END"], 4), { index: 3, stop: "END" });
});

test("text that may begin a stop string is held back", () => {
  assert.equal(heldBackLength("the en", ["end"]), 2);
  assert.equal(heldBackLength("the e", ["end", "xyz"]), 1);
  assert.equal(heldBackLength("tha", ["end"]), 0);
  assert.equal(heldBackLength("abcab", ["abcabd"]), 5);
});

test("length stops at max_tokens and at a full context", () => {
  assert.equal(lengthStop({ numOutputTokens: 4, maxTokens: 4, numTokens: 10, contextSize: 100 }), "length");
  assert.equal(lengthStop({ numOutputTokens: 3, maxTokens: 4, numTokens: 100, contextSize: 100 }), "length");
  assert.equal(lengthStop({ numOutputTokens: 3, maxTokens: 4, numTokens: 99, contextSize: 100 }), null);
});

test("the core's check puts a stop token before the lengths, so the last token of max_tokens may still be a stop", () => {
  const last = {
    token: asTokenId(2),
    stopTokens: [],
    ignoreEos: false,
    numOutputTokens: 4,
    maxTokens: 4,
    numTokens: 10,
    contextSize: 100,
  };
  assert.equal(checkStop({ ...last, isEndOfGeneration: true }), "stop");
  assert.equal(checkStop({ ...last, isEndOfGeneration: false }), "length");
  assert.equal(checkStop({ ...last, isEndOfGeneration: true, ignoreEos: true }), "length");
  assert.equal(checkStop({ ...last, isEndOfGeneration: false, numOutputTokens: 3 }), null);
});
