import assert from "node:assert/strict";
import test from "node:test";
import { greedySampling, type SamplingParams, type SequenceId } from "../../../src/engine/engine.ts";
import { GrammarFollower } from "../../../src/engine/grammar-follower.ts";
import { LlamaGrammars } from "../../../src/engine/llama-grammars.ts";
import type { LlamaInternals, NativeContext, PatchedNativeContext } from "../../../src/engine/llama-internals.ts";
import { LlamaSequences } from "../../../src/engine/llama-sequences.ts";

const GREEDY: SamplingParams = greedySampling();

/** A native context that records cell removals and fails where a test tells it to. */
function stubContext(): PatchedNativeContext & { removals: string[]; failSave: boolean; canRemove: boolean } {
  return {
    removals: [],
    failSave: false,
    canRemove: true,
    init: async () => true,
    dispose: async () => {},
    getContextSize: () => 64,
    initBatch: () => {},
    addToBatch: () => new Uint32Array(0),
    decodeBatch: async () => {},
    sampleToken: async () => [0, undefined, undefined],
    removeTokenCellsFromSequence(sequenceId, startPos) {
      this.removals.push(`${sequenceId}@${startPos}`);
      return this.canRemove;
    },
    getSequenceKvCacheMinPosition: () => -1,
    getSequenceKvCacheMaxPosition: () => -1,
    copySequenceCells: () => {},
    getLogits: () => new Float32Array(0),
    isKvUnified: () => true,
    saveSequenceCells(sequenceId) {
      if (this.failSave) throw new Error(`no copy of sequence ${sequenceId}`);
      return new Uint8Array(8);
    },
    restoreSequenceCells: () => true,
    getGrammarMask: () => {},
    getGrammarFallbacks: () => 0,
    getSequenceEmbedding: () => new Float32Array(0),
    getPoolingType: () => 0,
  };
}

const INTERNALS: LlamaInternals = {
  createSampler: () => ({ applyConfig: () => {}, dispose: () => {} }),
  createContext: (): NativeContext => stubContext(),
  isPatched: true,
  grammars: {
    create: () => {
      throw new Error("these tests use no grammar");
    },
    startState: () => {
      throw new Error("these tests use no grammar");
    },
    cloneState: (state) => state,
    accept: () => {},
  },
};

function sequences(native: NativeContext, onNativeLog?: (level: "error" | "warn", message: string) => void) {
  return new LlamaSequences(native, INTERNALS, {
    numSequences: 3,
    contextSize: 64,
    isKvShared: true,
    canCopyCells: false,
    grammars: new GrammarFollower({
      grammars: new LlamaGrammars(INTERNALS.grammars, { isEndOfGeneration: () => false, vocabSize: 8, masker: null }),
      isEndOfGeneration: () => false,
      pieceOf: () => "",
      tokensOf: () => [],
      penaltyWindow: 64,
    }),
    onNativeLog,
  });
}

test("a deferred save that fails still lets the releases after it run, and the step reports the failure", async () => {
  const native = stubContext();
  native.failSave = true;
  const slots = sequences(native);
  const a = slots.acquire(GREEDY, []) as SequenceId;
  const b = slots.acquire(GREEDY, []) as SequenceId;
  let saved: ReturnType<LlamaSequences["saveCells"]> | null = null;
  await assert.rejects(
    slots.duringStep(async () => {
      saved = slots.saveCells(a, 4);
      slots.release(a);
      slots.release(b);
      return [];
    }),
    /no copy of sequence 0/,
  );
  assert.equal(slots.numFree(), 3);
  assert.deepEqual(native.removals, ["0@4", "0@0", "1@0"]);
  assert.throws(() => {
    const c = slots.acquire(GREEDY, []) as SequenceId;
    slots.restoreCells(saved!, c, 0, 4);
  }, /saving these cells failed/);
});

test("a step that fails and a deferred change that fails are both reported", async () => {
  const native = stubContext();
  native.failSave = true;
  const slots = sequences(native);
  const a = slots.acquire(GREEDY, []) as SequenceId;
  const failure = await slots
    .duringStep(async () => {
      slots.saveCells(a, 4);
      throw new Error("decode failed");
    })
    .then(
      () => null,
      (error: unknown) => error,
    );
  assert.ok(failure instanceof AggregateError);
  assert.equal(failure.message, "decode failed (and 1 more failures)");
});

test("cells llama.cpp refuses to drop are reported through the native log", () => {
  const native = stubContext();
  native.canRemove = false;
  const logged: string[] = [];
  const slots = sequences(native, (level, message) => logged.push(`${level}: ${message}`));
  const a = slots.acquire(GREEDY, []) as SequenceId;
  slots.truncate(a, 5);
  assert.deepEqual(logged, ["error: llama.cpp could not drop the cells of sequence 0 from 5 on"]);
});
