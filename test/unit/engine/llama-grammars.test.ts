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
    cloneState: (state) => state,
    accept(state, token) {
      (state as unknown as { accepted: number[] }).accepted.push(token);
    },
    canAccept: () => true,
  };
  return { natives, parsed, states };
}

const EOS = 2 as TokenId;

test("a resumed sequence's grammar state replays its tokens, skipping end-of-generation tokens", () => {
  const { natives, states } = recordingNatives();
  const grammars = new LlamaGrammars(natives, (token) => token === EOS);
  grammars.stateAfter({ gbnf: 'root ::= "a"' }, tokenIds(5, 2, 7, 9));
  assert.deepEqual(states, [{ gbnf: 'root ::= "a"', accepted: [5, 7, 9] }]);
});

test("a grammar is parsed once while it stays among the most recently used", () => {
  const { natives, parsed } = recordingNatives();
  const grammars = new LlamaGrammars(natives, () => false, 2);
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
  const grammars = new LlamaGrammars(natives, () => false);
  assert.throws(
    () => grammars.prepare({ gbnf: "bad" }),
    (error: unknown) =>
      error instanceof NativeGrammarError &&
      error.code === "PAGODA_ERR_NATIVE_GRAMMAR" &&
      (error.cause as Error).message === "Failed to parse grammar",
  );
});
