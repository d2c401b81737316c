import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeEngine } from "../../src/engine/fake-engine.ts";
import { Scheduler } from "../../src/scheduler/scheduler.ts";
import { CoreHarness } from "../helpers/core-harness.ts";
import { makeRequest } from "../helpers/requests.ts";

function tokens(count: number, first = 10): number[] {
  return Array.from({ length: count }, (_, index) => first + index);
}

/** [sequence, start position, number of tokens, samples?] for every item of a step. */
function shapeOf(engine: FakeEngine, stepIndex: number): [number, number, number, boolean][] {
  return (engine.steps[stepIndex] ?? []).map((item) => [
    item.sequenceId,
    item.startPos,
    item.tokens.length,
    item.shouldSample,
  ]);
}

test("running requests decode one token each while admitted prompts are chunked under the token budget", async () => {
  const engine = new FakeEngine({ numSequences: 2, batchSize: 8 });
  const scheduler = new Scheduler(engine, { maxNumSequences: 2, maxNumBatchedTokens: 8, maxNumWaiting: 10 });
  const core = new CoreHarness(engine, scheduler);
  const a = makeRequest("a", tokens(5), { maxTokens: 3 });
  const b = makeRequest("b", tokens(10), { maxTokens: 3 });
  const c = makeRequest("c", tokens(3), { maxTokens: 1 });
  for (const entry of [a, b, c]) assert.equal(core.add(entry), true);

  for (let step = 0; step < 5; step++) await core.step();

  assert.deepEqual(
    shapeOf(engine, 0),
    [
      [0, 0, 5, true],
      [1, 0, 3, false],
    ],
    "a fits whole, b gets the 3 tokens left",
  );
  assert.deepEqual(
    shapeOf(engine, 1),
    [
      [0, 5, 1, true],
      [1, 3, 7, true],
    ],
    "a decodes first, b finishes its prompt",
  );
  assert.deepEqual(shapeOf(engine, 2), [
    [0, 6, 1, true],
    [1, 10, 1, true],
  ]);
  assert.deepEqual(
    shapeOf(engine, 3),
    [
      [1, 11, 1, true],
      [0, 0, 3, true],
    ],
    "c takes the slot a freed",
  );
  assert.equal(engine.steps.length, 4, "nothing is left to run after c's single token");
  assert.equal(a.sink.finished?.finishReason, "length");
  assert.equal(a.sink.tokens.length, 3);
  assert.equal(b.sink.tokens.length, 3);
  assert.equal(c.sink.finished?.numOutputTokens, 1);
  assert.equal(engine.numAcquiredSequences, 0, "every sequence is released");
});

test("a request waits in FCFS order until a sequence is free", async () => {
  const engine = new FakeEngine({ numSequences: 1, batchSize: 16 });
  const scheduler = new Scheduler(engine, { maxNumSequences: 1, maxNumBatchedTokens: 16, maxNumWaiting: 10 });
  const core = new CoreHarness(engine, scheduler);
  const first = makeRequest("first", tokens(2), { maxTokens: 2 });
  const second = makeRequest("second", tokens(2), { maxTokens: 2 });
  core.add(first);
  core.add(second);
  await core.step();
  assert.equal(scheduler.numRunning, 1);
  assert.equal(scheduler.numWaiting, 1);
  await core.step();
  assert.equal(first.sink.finished?.finishReason, "length");
  assert.equal(second.request.status, "waiting");
  await core.step();
  assert.equal(second.request.status, "running");
});

test("the waiting queue refuses requests beyond its bound", () => {
  const engine = new FakeEngine();
  const scheduler = new Scheduler(engine, { maxNumSequences: 4, maxNumBatchedTokens: 64, maxNumWaiting: 1 });
  const core = new CoreHarness(engine, scheduler);
  assert.equal(core.add(makeRequest("a", tokens(2))), true);
  assert.equal(core.add(makeRequest("b", tokens(2))), false);
});

test("a stop string ends the output before the string, and text that could begin it is held back", async () => {
  const engine = new FakeEngine();
  const scheduler = new Scheduler(engine, { maxNumSequences: 4, maxNumBatchedTokens: 64, maxNumWaiting: 10 });
  const core = new CoreHarness(engine, scheduler);
  const probe = makeRequest("probe", tokens(3), { maxTokens: 8 });
  core.add(probe);
  for (let step = 0; step < 8; step++) await core.step();
  const fullText = probe.sink.text;
  assert.equal(fullText.length, 8);

  const stop = fullText.slice(3, 5);
  const stopped = makeRequest("stopped", tokens(3), { maxTokens: 8, stopStrings: [stop] });
  core.add(stopped);
  for (let step = 0; step < 8; step++) await core.step();
  assert.equal(stopped.sink.text, fullText.slice(0, fullText.indexOf(stop)));
  assert.equal(stopped.sink.finished?.finishReason, "stop");
  const firstWithStopChar = stopped.sink.deltas.findIndex((delta) => delta.text.includes(stop[0] ?? ""));
  assert.equal(firstWithStopChar, -1, "the first character of the stop string was never streamed");
});

test("an end-of-generation token finishes with stop unless ignore_eos is set", async () => {
  const engine = new FakeEngine({ eosAfter: 2 });
  const scheduler = new Scheduler(engine, { maxNumSequences: 4, maxNumBatchedTokens: 64, maxNumWaiting: 10 });
  const core = new CoreHarness(engine, scheduler);
  const plain = makeRequest("plain", tokens(2), { maxTokens: 5 });
  const ignoring = makeRequest("ignoring", tokens(2), { maxTokens: 5, ignoreEos: true });
  core.add(plain);
  core.add(ignoring);
  for (let step = 0; step < 6; step++) await core.step();
  assert.equal(plain.sink.finished?.finishReason, "stop");
  assert.equal(plain.sink.finished?.numOutputTokens, 2, "the EOS token counts as generated");
  assert.equal(plain.sink.text.length, 1, "the EOS token adds no text");
  assert.equal(ignoring.sink.finished?.finishReason, "length");
  assert.equal(ignoring.sink.finished?.numOutputTokens, 5);
});

test("a sequence that fills its context finishes with length", async () => {
  const engine = new FakeEngine({ contextSize: 8 });
  const scheduler = new Scheduler(engine, { maxNumSequences: 4, maxNumBatchedTokens: 64, maxNumWaiting: 10 });
  const core = new CoreHarness(engine, scheduler);
  const long = makeRequest("long", tokens(5), { maxTokens: 100 });
  const { sink } = long;
  core.add(long);
  for (let step = 0; step < 10; step++) await core.step();
  assert.equal(sink.finished?.finishReason, "length");
  assert.equal(sink.finished?.numOutputTokens, 3);
  assert.equal(engine.steps.length, 3);
});

test("an aborted request is finished and its sequence freed at the next step", async () => {
  const engine = new FakeEngine({ numSequences: 1 });
  const scheduler = new Scheduler(engine, { maxNumSequences: 1, maxNumBatchedTokens: 64, maxNumWaiting: 10 });
  const core = new CoreHarness(engine, scheduler);
  const victim = makeRequest("victim", tokens(2), { maxTokens: 100 });
  const next = makeRequest("next", tokens(2), { maxTokens: 1 });
  core.add(victim);
  core.add(next);
  await core.step();
  core.abort(victim.request.id);
  assert.equal(engine.numAcquiredSequences, 1, "nothing changes before the next step");
  await core.step();
  assert.equal(victim.sink.finished?.finishReason, "abort");
  assert.deepEqual(shapeOf(engine, 1), [[0, 0, 2, true]], "the freed slot serves the next request in the same step");
  assert.equal(next.sink.finished?.finishReason, "length");
  assert.equal(engine.numAcquiredSequences, 0);
});

test("a failed batch fails its requests and frees their sequences", async () => {
  const engine = new FakeEngine();
  const scheduler = new Scheduler(engine, { maxNumSequences: 4, maxNumBatchedTokens: 64, maxNumWaiting: 10 });
  const core = new CoreHarness(engine, scheduler);
  const a = makeRequest("a", tokens(2));
  core.add(a);
  engine.failNextStep(new Error("decode failed"));
  await core.step();
  assert.equal(a.sink.finished?.finishReason, "error");
  assert.equal(a.sink.finished?.error?.message, "decode failed");
  assert.equal(engine.numAcquiredSequences, 0);
});

test("a budget smaller than the running requests is refused at construction", () => {
  assert.throws(
    () => new Scheduler(new FakeEngine(), { maxNumSequences: 4, maxNumBatchedTokens: 2, maxNumWaiting: 1 }),
    RangeError,
  );
});

test("beside decoding requests, prompts get only the prefill budget; alone, a prompt gets the whole token budget", async () => {
  const engine = new FakeEngine({ numSequences: 3, batchSize: 32 });
  const scheduler = new Scheduler(engine, {
    maxNumSequences: 3,
    maxNumBatchedTokens: 32,
    maxNumPrefillTokens: 6,
    maxNumWaiting: 10,
  });
  const core = new CoreHarness(engine, scheduler);
  const long = makeRequest("long", tokens(40), { maxTokens: 2 });
  core.add(long);
  await core.step();
  assert.deepEqual(shapeOf(engine, 0), [[0, 0, 32, false]], "nothing decodes yet: the whole budget");
  await core.step();
  const decoder = makeRequest("decoder", tokens(3, 300), { maxTokens: 10 });
  const other = makeRequest("other", tokens(20, 200), { maxTokens: 2 });
  core.add(decoder);
  core.add(other);
  await core.step();
  assert.deepEqual(
    shapeOf(engine, 2),
    [
      [0, 40, 1, true],
      [1, 0, 3, true],
      [2, 0, 3, false],
    ],
    "long decodes; 6 prompt tokens go to the arrivals",
  );
  await core.step();
  assert.deepEqual(
    shapeOf(engine, 3),
    [
      [1, 3, 1, true],
      [2, 3, 6, false],
    ],
    "the rest of the prompt in chunks of 6",
  );
});
