import assert from "node:assert/strict";
import test from "node:test";
import type { TokenId } from "../../../src/engine/engine.ts";
import { LlamaGrammars, NativeGrammarError } from "../../../src/engine/llama-grammars.ts";
import type { NativeGrammar, NativeGrammarState, NativeGrammars } from "../../../src/engine/llama-internals.ts";
import { tokenIds } from "../../helpers/ids.ts";

/** Native grammars as records: which texts were parsed, and the tokens each state accepted. */
function recordingNatives() {
  const parsed: string[] = [];
  const states: { gbnf: string; accepted: number[] }[] = [];
  const natives: NativeGrammars = {
    create(gbnf) {
      if (gbnf.includes("bad")) throw new Error("Failed to parse grammar");
      parsed.push(gbnf);
      return { gbnf } as unknown as NativeGrammar;
    },
    startState(grammar) {
      const state = { gbnf: (grammar as unknown as { gbnf: string }).gbnf, accepted: [] };
      states.push(state);
      return state as unknown as NativeGrammarState;
    },
    cloneState(state) {
      const { gbnf, accepted } = state as unknown as { gbnf: string; accepted: number[] };
      return { gbnf, accepted: [...accepted] } as unknown as NativeGrammarState;
    },
    accept(state, token) {
      (state as unknown as { accepted: number[] }).accepted.push(token);
    },
  };
  return { natives, parsed, states };
}

const EOS = 2 as TokenId;

test("a resumed sequence's grammar state replays its tokens, skipping end-of-generation tokens", () => {
  const { natives, states } = recordingNatives();
  const grammars = new LlamaGrammars(natives, {
    isEndOfGeneration: (token) => token === EOS,
    vocabSize: 8,
    masker: null,
  });
  grammars.stateAfter({ gbnf: 'root ::= "a"' }, tokenIds(5, 2, 7, 9));
  assert.deepEqual(states, [{ gbnf: 'root ::= "a"', accepted: [5, 7, 9] }]);
});

test("a grammar is parsed once while it stays among the most recently used", () => {
  const { natives, parsed } = recordingNatives();
  const grammars = new LlamaGrammars(natives, {
    isEndOfGeneration: () => false,
    vocabSize: 8,
    masker: null,
    capacity: 2,
  });
  grammars.prepare({ gbnf: "a" });
  grammars.prepare({ gbnf: "b" });
  grammars.prepare({ gbnf: "a" });
  grammars.prepare({ gbnf: "c" });
  grammars.prepare({ gbnf: "a" });
  grammars.prepare({ gbnf: "b" });
  assert.deepEqual(parsed, ["a", "b", "c", "b"], "b was the least recently used when c came");
});

test("a grammar llama.cpp refuses is a NativeGrammarError carrying the native error", () => {
  const { natives } = recordingNatives();
  const grammars = new LlamaGrammars(natives, { isEndOfGeneration: () => false, vocabSize: 8, masker: null });
  assert.throws(
    () => grammars.prepare({ gbnf: "bad" }),
    (error: unknown) =>
      error instanceof NativeGrammarError &&
      error.code === "PAGODA_ERR_NATIVE_GRAMMAR" &&
      (error.cause as Error).message === "Failed to parse grammar",
  );
});

test("row masks walk the drafts the grammar accepts and repeat the last mask after one it rejects", () => {
  const { natives, states } = recordingNatives();
  // The "grammar" allows exactly the tokens above the last accepted one (any token at the start).
  const masker = (state: NativeGrammarState, mask: Uint8Array) => {
    const accepted = (state as unknown as { accepted: number[] }).accepted;
    const floor = accepted.at(-1) ?? -1;
    for (let token = 0; token < mask.length; token++) mask[token] = token > floor ? 1 : 0;
  };
  const grammars = new LlamaGrammars(natives, { isEndOfGeneration: (token) => token === EOS, vocabSize: 8, masker });
  const state = grammars.stateAfter({ gbnf: "g" }, tokenIds(3));
  const masks = grammars.rowMasks(state, tokenIds(5, 4, 6)) ?? [];
  assert.deepEqual(
    masks.map((mask) => [...mask].join("")),
    ["00001111", "00000011", "00000011", "00000011"],
    "after 3 only 4..7; after 5 only 6, 7; 4 is rejected there, so the rest repeat",
  );
  assert.deepEqual(states[0]?.accepted, [3], "the sequence's own state is not advanced by drafts");
});

test("advancing a state by verified tokens stops at the first end-of-generation token", () => {
  const { natives, states } = recordingNatives();
  const grammars = new LlamaGrammars(natives, {
    isEndOfGeneration: (token) => token === EOS,
    vocabSize: 8,
    masker: null,
  });
  const state = grammars.stateAfter({ gbnf: "g" }, []);
  grammars.advance(state, tokenIds(4, 5, 2, 6));
  assert.deepEqual(states[0]?.accepted, [4, 5]);
});
