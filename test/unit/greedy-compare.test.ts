import assert from "node:assert/strict";
import { test } from "node:test";
import { compareGreedy, compareGreedyText, type GreedyRun } from "../helpers/greedy-compare.ts";

const reference: GreedyRun = {
  text: "a b c",
  tokens: ["a", " b", " c"],
  topLogprobs: [
    { a: -0.1, x: -3 },
    { " b": -0.69, " y": -0.7 },
    { " c": -0.2, " z": -2 },
  ],
};

test("greedy runs match when identical, or when they part at a near-tie, and fail anywhere else", () => {
  assert.equal(compareGreedy(reference, reference, "same"), "identical");
  assert.equal(
    compareGreedy({ text: "a y q", tokens: ["a", " y", " q"], topLogprobs: [] }, reference, "tie"),
    "near-tie",
  );
  assert.throws(
    () => compareGreedy({ text: "x b c", tokens: ["x", " b", " c"], topLogprobs: [] }, reference, "wide"),
    /not a near-tie/,
  );
  assert.throws(
    () => compareGreedy({ text: "a b q", tokens: ["a", " b", " q"], topLogprobs: [] }, reference, "unlisted"),
    /not a near-tie/,
  );
});

test("text-only runs are matched token by token against the reference's pieces", () => {
  assert.equal(compareGreedyText("a b c", reference, "same"), "identical");
  assert.equal(compareGreedyText("a y whatever", reference, "tie"), "near-tie");
  assert.throws(() => compareGreedyText("a q", reference, "unlisted"), /not at a listed alternative/);
});
