/**
 * The output processor: text from the core's token outputs, stop strings across token boundaries, held-back text
 * and its release at a stop token or at a length finish, and the stop string's finish of the request in the core.
 * First on hand-made core outputs with a tokenizer of multi-character pieces, then on the scheduler and the
 * FakeEngine, where every step also checks the scheduler's invariants.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { SampledLogprobs, TokenId } from "../../src/engine/engine.ts";
import { FakeEngine } from "../../src/engine/fake-engine.ts";
import type { CoreOutput } from "../../src/scheduler/core-output.ts";
import { OutputProcessor, type RequestStats } from "../../src/scheduler/output-processor.ts";
import type { FinishReason, GenerationParams } from "../../src/scheduler/request.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { DraftModel } from "../../src/spec/draft-model.ts";
import { Speculator } from "../../src/spec/speculator.ts";
import { CoreHarness } from "../helpers/core-harness.ts";
import { asRequestId, asTokenIds, tokenIds } from "../helpers/ids.ts";
import { GREEDY, makeRequest, RecordingSink } from "../helpers/requests.ts";

/** Token → text; 9 is the end of generation, 7 and 8 the two UTF-8 bytes of "é". */
const PIECES: Record<number, string> = { 1: "Hel", 2: "lo ", 3: "wor", 4: "ld", 5: "!", 6: " a" };
const EOS = 9;

function detokenize(tokens: readonly TokenId[]): string {
  const bytes: number[] = [];
  for (const token of tokens) {
    if (token === 7) bytes.push(0xc3);
    else if (token === 8) bytes.push(0xa9);
    else if (token !== EOS) bytes.push(...Buffer.from(PIECES[token] ?? "?"));
  }
  return Buffer.from(bytes).toString("utf8");
}

const ID = asRequestId("r");
const LOGPROBS: SampledLogprobs = { logprob: -0.25, top: [] };

interface Setup {
  readonly processor: OutputProcessor;
  readonly sink: RecordingSink;
  readonly finished: RequestStats[];
}

function setup(params: Partial<GenerationParams> = {}, promptTokens: readonly TokenId[] = tokenIds(5)): Setup {
  const finished: RequestStats[] = [];
  const processor = new OutputProcessor({
    detokenize,
    now: () => 100,
    onRequestFinished: (stats) => finished.push(stats),
  });
  const sink = new RecordingSink();
  processor.addRequest({
    id: ID,
    promptTokens,
    params: { maxTokens: 16, sampling: GREEDY, stopStrings: [], stopTokens: [], ignoreEos: false, ...params },
    sink,
    arrivalAtMs: 1,
  });
  return { processor, sink, finished };
}

/** A core output of plain token numbers. */
function output(newTokens: number[], finishReason: FinishReason | null = null): CoreOutput {
  return {
    requestId: ID,
    newTokens: asTokenIds(newTokens),
    logprobs: null,
    finishReason,
    error: null,
    numCachedTokens: 0,
    numPreemptions: 0,
    scheduledAtMs: 2,
  };
}

/** Each delta as [text, tokens]. */
function deltasOf(sink: RecordingSink): [string, TokenId[]][] {
  return sink.deltas.map((delta) => [delta.text, [...delta.tokens]]);
}

test("a stop string across three tokens ends the text where it begins, and text that could begin it is held back", () => {
  const { processor, sink } = setup({ stopStrings: ["o wo"] });
  assert.equal(processor.processOutput(output([1]), 10), null);
  assert.equal(processor.processOutput(output([2]), 11), null, "'o ' could begin the stop string: held back");
  assert.equal(processor.processOutput(output([3]), 12), 1, "the first new token completed it");
  assert.deepEqual(deltasOf(sink), [
    ["Hel", [1]],
    ["l", [2]],
    ["", [3]],
  ]);
  assert.equal(sink.text, "Hell");
  assert.deepEqual(sink.finished, {
    finishReason: "stop",
    error: null,
    numPromptTokens: 1,
    numOutputTokens: 3,
    numCachedTokens: 0,
  });
  assert.equal(processor.numRequests, 0);
});

test("in an output of several tokens, a stop string ends it at the token that completes it", () => {
  const { processor, sink, finished } = setup({ stopStrings: ["lo"] });
  assert.equal(processor.processOutput(output([1, 2, 3, 4]), 10), 2);
  assert.deepEqual(deltasOf(sink), [
    ["He", [1]],
    ["l", [2]],
  ]);
  assert.equal(sink.finished?.numOutputTokens, 2, "tokens past the stop string are not output");
  assert.equal(finished[0]?.numOutputTokens, 2);
});

test("held-back text is released when a stop token ends the request, and the stop token adds none", () => {
  const { processor, sink } = setup({ stopStrings: ["o wo"] });
  processor.processOutput(output([1]), 10);
  processor.processOutput(output([2]), 11);
  assert.equal(processor.processOutput(output([EOS], "stop"), 12), null, "the core finished it itself");
  assert.deepEqual(deltasOf(sink), [
    ["Hel", [1]],
    ["l", [2]],
    ["o ", [EOS]],
  ]);
  assert.equal(sink.finished?.finishReason, "stop");
  assert.equal(sink.finished?.numOutputTokens, 3, "the stop token counts as generated");
});

test("at a length finish, held-back text and an incomplete character are flushed with the last token", () => {
  const { processor, sink } = setup({ stopStrings: ["o wo"] });
  processor.processOutput(output([1]), 10);
  processor.processOutput(output([2]), 11);
  processor.processOutput(output([7], "length"), 12);
  assert.deepEqual(deltasOf(sink), [
    ["Hel", [1]],
    ["l", [2]],
    ["o \uFFFD", [7]],
  ]);
  assert.equal(sink.finished?.finishReason, "length");
});

test("an incomplete character waits for the token that completes it", () => {
  const { processor, sink } = setup();
  processor.processOutput(output([7]), 10);
  processor.processOutput(output([8]), 11);
  processor.processOutput(output([5], "length"), 12);
  assert.deepEqual(deltasOf(sink), [
    ["", [7]],
    ["é", [8]],
    ["!", [5]],
  ]);
});

test("a stop string that completes at the length limit finishes with stop", () => {
  const { processor, sink } = setup({ stopStrings: ["ld"] });
  processor.processOutput(output([3]), 10);
  assert.equal(processor.processOutput(output([4], "length"), 11), 1);
  assert.equal(sink.text, "wor");
  assert.equal(sink.finished?.finishReason, "stop");
});

test("an abort or an error without tokens finishes with no delta, and the error passes through", () => {
  const aborted = setup();
  aborted.processor.processOutput(output([1]), 10);
  aborted.processor.processOutput(output([], "abort"), 11);
  assert.deepEqual(deltasOf(aborted.sink), [["Hel", [1]]]);
  assert.equal(aborted.sink.finished?.finishReason, "abort");
  assert.equal(aborted.sink.finished?.numOutputTokens, 1);

  const failed = setup();
  const error = new Error("decode failed");
  failed.processor.processOutput({ ...output([], "error"), error }, 10);
  assert.deepEqual(failed.sink.deltas, []);
  assert.equal(failed.sink.finished?.error, error);
});

test("each token's delta carries its logprobs, and the stats keep the steps' times and the core's counts", () => {
  const { processor, sink, finished } = setup();
  processor.processOutput({ ...output([1]), logprobs: LOGPROBS }, 10);
  processor.processOutput({ ...output([2]), logprobs: LOGPROBS }, 14);
  processor.processOutput({ ...output([3], "length"), logprobs: LOGPROBS, numCachedTokens: 1, numPreemptions: 2 }, 15);
  assert.deepEqual(
    sink.deltas.map((delta) => delta.logprobs),
    [[LOGPROBS], [LOGPROBS], [LOGPROBS]],
  );
  assert.deepEqual(finished, [
    {
      requestId: ID,
      finishReason: "length",
      numPromptTokens: 1,
      numOutputTokens: 3,
      numCachedTokens: 1,
      numPreemptions: 2,
      maxTokens: 16,
      arrivalAtMs: 1,
      scheduledAtMs: 2,
      firstTokenAtMs: 10,
      lastTokenAtMs: 15,
      finishedAtMs: 100,
      interTokenMs: [4, 1],
    },
  ]);
});

test("a request is processed once: a second submission of its id and an output for an unknown one throw", () => {
  const { processor } = setup();
  assert.throws(() =>
    processor.addRequest({
      id: ID,
      promptTokens: [],
      params: makeRequest("x", []).request.params,
      sink: new RecordingSink(),
      arrivalAtMs: 0,
    }),
  );
  assert.throws(() => processor.processOutput({ ...output([1]), requestId: asRequestId("other") }, 0));
});

/** The FakeEngine's greedy text after `prompt`, `maxTokens` long. */
async function plainRun(prompt: readonly number[], maxTokens: number): Promise<RecordingSink> {
  const engine = new FakeEngine();
  const core = new CoreHarness(
    engine,
    new Scheduler(engine, { maxNumSequences: 4, maxNumBatchedTokens: 64, maxNumWaiting: 4 }),
  );
  const entry = makeRequest("plain", prompt, { maxTokens });
  core.add(entry);
  await core.runUntilIdle();
  return entry.sink;
}

test("a stop string frees the request's sequence and blocks in the step that completes it", async () => {
  const prompt = [10, 11, 12];
  const plain = await plainRun(prompt, 8);
  const stop = plain.text.slice(3, 5);
  const engine = new FakeEngine();
  const scheduler = new Scheduler(engine, {
    maxNumSequences: 4,
    maxNumBatchedTokens: 64,
    maxNumWaiting: 4,
    blockSize: 4,
  });
  const core = new CoreHarness(engine, scheduler);
  const entry = makeRequest("stopped", prompt, { maxTokens: 8, stopStrings: [stop] });
  core.add(entry);
  const stopAt = plain.text.indexOf(stop) + stop.length;
  for (let step = 0; step < stopAt - 1; step++) await core.step();
  const finishedBefore = entry.sink.finished;
  assert.equal(finishedBefore, null, "not finished before the step that completes the stop string");
  assert.equal(engine.numAcquiredSequences, 1);
  const last = await core.step();
  assert.equal(last?.numGeneratedTokens, 1);
  assert.equal(entry.sink.finished?.finishReason, "stop");
  assert.equal(entry.sink.text, plain.text.slice(0, plain.text.indexOf(stop)));
  assert.deepEqual(entry.sink.tokens, plain.tokens.slice(0, stopAt));
  assert.equal(engine.numAcquiredSequences, 0, "its sequence is free at once");
  assert.equal(scheduler.kvCacheState().numUsedBlocks, 0, "and so are its blocks");
  assert.equal(scheduler.numRunning, 0);
  assert.equal(core.processor.numRequests, 0);
});

test("choices of one prompt end at their own stop strings; the others' streams go on unchanged", async () => {
  const prompt = [20, 21];
  const plain = await plainRun(prompt, 10);
  const engine = new FakeEngine();
  const scheduler = new Scheduler(engine, {
    maxNumSequences: 4,
    maxNumBatchedTokens: 64,
    maxNumWaiting: 4,
    blockSize: 4,
  });
  const core = new CoreHarness(engine, scheduler);
  const earlyStop = plain.text.slice(2, 4);
  const lateStop = plain.text.slice(6, 8);
  const early = makeRequest("early", prompt, { maxTokens: 10, stopStrings: [earlyStop] });
  const late = makeRequest("late", prompt, { maxTokens: 10, stopStrings: [lateStop] });
  const none = makeRequest("none", prompt, { maxTokens: 10, stopStrings: ["#"] });
  for (const entry of [early, late, none]) core.add(entry);
  await core.runUntilIdle();
  // One character per token: a stop string ends the output after the token that completes it.
  for (const [{ sink }, stop] of [
    [early, earlyStop],
    [late, lateStop],
  ] as const) {
    const index = plain.text.indexOf(stop);
    assert.equal(sink.text, plain.text.slice(0, index));
    assert.deepEqual(sink.tokens, plain.tokens.slice(0, index + stop.length));
    assert.equal(sink.finished?.numOutputTokens, index + stop.length);
  }
  assert.equal(none.sink.text, plain.text);
  assert.equal(none.sink.finished?.finishReason, "length");
  assert.deepEqual(
    [early, late, none].map(({ sink }) => sink.finished?.finishReason),
    ["stop", "stop", "length"],
  );
  assert.equal(engine.numAcquiredSequences, 0);
});

test("under speculation a stop string inside the accepted drafts ends the output there and frees the request", async () => {
  // A twin draft model has every draft accepted: each step yields four tokens.
  const prompt = [30, 31, 32, 33, 34];
  const plain = await plainRun(prompt, 12);
  const engine = new FakeEngine({ kvCacheTokens: 512, contextSize: 128 });
  const draftEngine = new FakeEngine({ kvCacheTokens: 512, contextSize: 128 });
  const speculator = new Speculator({
    maxDraft: 3,
    minNgram: 1,
    maxNgram: 3,
    draftModel: new DraftModel(draftEngine, 4),
    isAdaptive: false,
  });
  const scheduler = new Scheduler(engine, {
    maxNumSequences: 4,
    maxNumBatchedTokens: 64,
    maxNumWaiting: 4,
    blockSize: 4,
    speculator,
  });
  const core = new CoreHarness(engine, scheduler);
  // The second step yields tokens 2-5; the stop string is tokens 3 and 4.
  const stop = plain.text.slice(2, 4);
  assert.equal(plain.text.indexOf(stop), 2, "the stop string occurs first where it is cut from");
  const entry = makeRequest("drafted", prompt, { maxTokens: 12, stopStrings: [stop] });
  core.add(entry);
  assert.equal((await core.step())?.numGeneratedTokens, 1, "the prompt's step samples one token");
  const second = await core.step();
  assert.equal(second?.plan.scheduled[0]?.drafts.length, 3);
  assert.equal(second?.numGeneratedTokens, 3, "the step counts the tokens up to the stop string");
  assert.deepEqual(entry.sink.tokens, plain.tokens.slice(0, 4));
  assert.equal(entry.sink.text, plain.text.slice(0, 2));
  assert.deepEqual(entry.sink.finished, {
    finishReason: "stop",
    error: null,
    numPromptTokens: 5,
    numOutputTokens: 4,
    numCachedTokens: 0,
  });
  assert.equal(engine.numAcquiredSequences, 0);
  assert.equal(draftEngine.numAcquiredSequences, 0, "the draft sequence goes with it");
  assert.equal(scheduler.kvCacheState().numUsedBlocks, 0);
});
