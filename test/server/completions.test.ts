import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import type { FakeEngine } from "../../src/engine/fake-engine.ts";
import type { EngineLoop } from "../../src/scheduler/engine-loop.ts";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { assertError, type Json, okJson, parseStream, postJson } from "./support.ts";

const MODEL = FAKE_MODEL_ID;
/** BOS, then "Hello": the FakeEngine maps character c to token c - 32 + 2. */
const HELLO_TOKENS = [1, 42, 71, 78, 78, 81];

let app: FastifyInstance;
let engine: FakeEngine;
let loop: EngineLoop;

before(async () => {
  ({ app, engine, loop } = await startFakeServer());
});

after(async () => {
  await app.close();
});

async function complete(body: Record<string, unknown>, server: FastifyInstance = app): Promise<Json> {
  const json = okJson(await postJson(server, "/v1/completions", { model: MODEL, ...body }));
  assertMatchesSchema("CreateCompletionResponse", json);
  return json;
}

async function completeStream(body: Record<string, unknown>): Promise<Json[]> {
  return parseStream(await postJson(app, "/v1/completions", { model: MODEL, stream: true, ...body })).chunks;
}

/** The 16 greedy letters the FakeEngine continues "Hello" with. */
async function greedyHello(): Promise<string> {
  const body = await complete({ prompt: "Hello", temperature: 0, max_tokens: 16 });
  const text: string = body.choices[0].text;
  assert.match(text, /^[a-z]{16}$/);
  return text;
}

/** Concatenated text of each choice index of a completion stream. */
function streamedTexts(chunks: Json[]): string[] {
  const texts: string[] = [];
  for (const chunk of chunks) {
    for (const choice of chunk.choices) texts[choice.index] = (texts[choice.index] ?? "") + choice.text;
  }
  return texts;
}

test("a string prompt at temperature 0 returns max_tokens greedy letters and counts BOS in prompt_tokens", async () => {
  const body = await complete({ prompt: "Hello", temperature: 0, max_tokens: 8 });
  assert.match(body.id, /^cmpl-[0-9a-f]{32}$/);
  assert.equal(body.object, "text_completion");
  assert.equal(body.model, MODEL);
  assert.ok(Number.isInteger(body.created));
  assert.equal(body.choices.length, 1);
  const [choice] = body.choices;
  assert.match(choice.text, /^[a-z]{8}$/);
  assert.deepEqual(choice, { index: 0, text: choice.text, logprobs: null, finish_reason: "length" });
  assert.deepEqual(body.usage, {
    prompt_tokens: 6,
    completion_tokens: 8,
    total_tokens: 14,
    prompt_tokens_details: { cached_tokens: 0 },
  });

  const again = await complete({ prompt: "Hello", temperature: 0, max_tokens: 8 });
  assert.equal(again.choices[0].text, choice.text, "greedy decoding is deterministic");
  assert.notEqual(again.id, body.id, "every response has its own id");
});

test("max_tokens defaults to 16 and a smaller max_tokens ends the same text early with finish_reason length", async () => {
  const full = await complete({ prompt: "Hello", temperature: 0 });
  assert.equal(full.choices[0].finish_reason, "length");
  assert.equal(full.choices[0].text.length, 16);
  assert.deepEqual(full.usage, {
    prompt_tokens: 6,
    completion_tokens: 16,
    total_tokens: 22,
    prompt_tokens_details: { cached_tokens: 0 },
  });

  const short = await complete({ prompt: "Hello", temperature: 0, max_tokens: 3 });
  assert.equal(short.choices[0].text, full.choices[0].text.slice(0, 3));
  assert.equal(short.choices[0].finish_reason, "length");
  assert.deepEqual(short.usage, {
    prompt_tokens: 6,
    completion_tokens: 3,
    total_tokens: 9,
    prompt_tokens_details: { cached_tokens: 0 },
  });
});

test("a token-array prompt is used verbatim and continues exactly like the equivalent string prompt", async () => {
  const expected = await greedyHello();
  const withBos = await complete({ prompt: HELLO_TOKENS, temperature: 0, max_tokens: 16 });
  assert.equal(withBos.choices[0].text, expected);
  assert.deepEqual(withBos.usage, {
    prompt_tokens: 6,
    completion_tokens: 16,
    total_tokens: 22,
    prompt_tokens_details: { cached_tokens: 0 },
  });

  const withoutBos = await complete({ prompt: HELLO_TOKENS.slice(1), temperature: 0, max_tokens: 2 });
  assert.deepEqual(
    withoutBos.usage,
    { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7, prompt_tokens_details: { cached_tokens: 0 } },
    "no BOS is added to token prompts",
  );
});

test("an array of string prompts returns one choice per prompt, each equal to that prompt's own completion", async () => {
  const first = await complete({ prompt: "ab", temperature: 0, max_tokens: 5 });
  const second = await complete({ prompt: "xyz", temperature: 0, max_tokens: 5 });
  assert.notEqual(first.choices[0].text, second.choices[0].text, "the two prompts continue differently");

  const body = await complete({ prompt: ["ab", "xyz"], temperature: 0, max_tokens: 5 });
  assert.deepEqual(body.choices, [
    { index: 0, text: first.choices[0].text, logprobs: null, finish_reason: "length" },
    { index: 1, text: second.choices[0].text, logprobs: null, finish_reason: "length" },
  ]);
  assert.deepEqual(body.usage, {
    prompt_tokens: 3 + 4,
    completion_tokens: 10,
    total_tokens: 17,
    prompt_tokens_details: { cached_tokens: 0 },
  });
});

test("an array of token arrays with n 2 numbers the choices prompt_index * n + choice_index", async () => {
  const promptA = [1, 40, 41];
  const promptB = [1, 60];
  const textA = (await complete({ prompt: promptA, temperature: 0, max_tokens: 4 })).choices[0].text;
  const textB = (await complete({ prompt: promptB, temperature: 0, max_tokens: 4 })).choices[0].text;
  assert.notEqual(textA, textB);

  const body = await complete({ prompt: [promptA, promptB], n: 2, temperature: 0, max_tokens: 4 });
  assert.deepEqual(
    body.choices.map((choice: Json) => [choice.index, choice.text, choice.finish_reason]),
    [
      [0, textA, "length"],
      [1, textA, "length"],
      [2, textB, "length"],
      [3, textB, "length"],
    ],
  );
  assert.deepEqual(body.usage, {
    prompt_tokens: 5,
    completion_tokens: 16,
    total_tokens: 21,
    prompt_tokens_details: { cached_tokens: 0 },
  });
});

test("n 2 at temperature 1 gives each choice its own seed, and the same request seed reproduces both choices", async () => {
  const request = { prompt: "Hello", n: 2, temperature: 1, seed: 7, max_tokens: 12 };
  const body = await complete(request);
  assert.deepEqual(
    body.choices.map((choice: Json) => choice.index),
    [0, 1],
  );
  const texts: string[] = body.choices.map((choice: Json) => choice.text);
  for (const text of texts) assert.match(text, /^[a-z]{12}$/);
  assert.notEqual(texts[0], texts[1], "the two choices of one request differ");
  assert.deepEqual(body.usage, {
    prompt_tokens: 6,
    completion_tokens: 24,
    total_tokens: 30,
    prompt_tokens_details: { cached_tokens: 0 },
  });

  const again = await complete(request);
  assert.deepEqual(
    again.choices.map((choice: Json) => choice.text),
    texts,
    "the same seed reproduces every choice",
  );

  const otherSeed = await complete({ ...request, seed: 8 });
  assert.notEqual(otherSeed.choices[0].text, texts[0], "another seed samples differently");
  assert.notEqual(otherSeed.choices[1].text, texts[1]);
});

test("a seed makes a sampled completion reproducible and differs from the greedy text", async () => {
  const greedy = await greedyHello();
  const request = { prompt: "Hello", temperature: 1.2, seed: 12345, max_tokens: 16 };
  const first = await complete(request);
  const second = await complete(request);
  assert.equal(second.choices[0].text, first.choices[0].text);
  assert.notEqual(first.choices[0].text, greedy);
  const other = await complete({ ...request, seed: 54321 });
  assert.notEqual(other.choices[0].text, first.choices[0].text);
});

test("a stop string ends the text just before its first occurrence with finish_reason stop", async () => {
  const greedy = await greedyHello();
  const stop = greedy.slice(5, 7);
  const cut = greedy.indexOf(stop);
  assert.ok(cut > 0 && cut <= 5, "precondition: the stop string occurs after the first character");

  const body = await complete({ prompt: "Hello", temperature: 0, max_tokens: 16, stop });
  assert.deepEqual(body.choices[0], { index: 0, text: greedy.slice(0, cut), logprobs: null, finish_reason: "stop" });
  // Generation ends with the token that completes the stop string; one letter is one token.
  assert.deepEqual(body.usage, {
    prompt_tokens: 6,
    completion_tokens: cut + stop.length,
    total_tokens: 6 + cut + stop.length,
    prompt_tokens_details: { cached_tokens: 0 },
  });
});

test("an array of stop strings ends the text at whichever stop string occurs first", async () => {
  const greedy = await greedyHello();
  const stops = [greedy.slice(10, 12), greedy.slice(3, 5)];
  const cut = Math.min(...stops.map((stop) => greedy.indexOf(stop)));
  assert.ok(cut > 0 && cut <= 3, "precondition: the later-listed stop string occurs first");

  const body = await complete({ prompt: "Hello", temperature: 0, max_tokens: 16, stop: stops });
  assert.equal(body.choices[0].text, greedy.slice(0, cut));
  assert.equal(body.choices[0].finish_reason, "stop");
  assert.equal(body.usage.completion_tokens, cut + 2);
});

test("a streamed completion with a stop string sends exactly the non-streamed text", async () => {
  const greedy = await greedyHello();
  const stop = greedy.slice(5, 7);
  const expected = (await complete({ prompt: "Hello", temperature: 0, max_tokens: 16, stop })).choices[0].text;
  const chunks = await completeStream({ prompt: "Hello", temperature: 0, max_tokens: 16, stop });
  assert.deepEqual(streamedTexts(chunks), [expected]);
  assert.equal(chunks.at(-1).choices[0].finish_reason, "stop");
  assert.ok(!chunks.some((chunk) => chunk.choices[0].text.includes(stop)), "no chunk leaks the stop string");
});

test("echo prepends the prompt as sent, for text and token prompts, streamed or not", async () => {
  const greedy = await greedyHello();
  const body = await complete({ prompt: "Hello", echo: true, temperature: 0, max_tokens: 4 });
  assert.deepEqual(body.choices[0], {
    index: 0,
    text: `Hello${greedy.slice(0, 4)}`,
    logprobs: null,
    finish_reason: "length",
  });
  assert.deepEqual(body.usage, {
    prompt_tokens: 6,
    completion_tokens: 4,
    total_tokens: 10,
    prompt_tokens_details: { cached_tokens: 0 },
  });

  const tokens = await complete({ prompt: HELLO_TOKENS, echo: true, temperature: 0, max_tokens: 4 });
  assert.equal(tokens.choices[0].text, `Hello${greedy.slice(0, 4)}`, "BOS has no text to echo");

  const chunks = await completeStream({ prompt: "Hello", echo: true, temperature: 0, max_tokens: 4 });
  assert.deepEqual(
    chunks[0].choices,
    [{ index: 0, text: "Hello", logprobs: null, finish_reason: null }],
    "the echo comes first",
  );
  assert.deepEqual(streamedTexts(chunks), [`Hello${greedy.slice(0, 4)}`]);
});

test("logprobs 2 reports every sampled token with its logprob, two alternatives and its text offset", async () => {
  const greedy = await greedyHello();
  const body = await complete({ prompt: "Hello", temperature: 0, max_tokens: 4, logprobs: 2 });
  const letters = [...greedy.slice(0, 4)];
  // The FakeEngine gives every sampled token logprob -0.5 and token 2 (a space) as the runner-up at -1.5.
  assert.deepEqual(body.choices[0].logprobs, {
    tokens: letters,
    token_logprobs: [-0.5, -0.5, -0.5, -0.5],
    top_logprobs: letters.map((letter) => ({ [letter]: -0.5, " ": -1.5 })),
    text_offset: [0, 1, 2, 3],
  });
  assert.equal(body.choices[0].text, letters.join(""));
});

test("streamed logprobs concatenate to exactly the non-streamed logprobs", async () => {
  const request = { prompt: "Hello", temperature: 0, max_tokens: 6, logprobs: 1 };
  const expected = (await complete(request)).choices[0].logprobs;
  const chunks = await completeStream(request);
  const merged = {
    tokens: [] as string[],
    token_logprobs: [] as number[],
    top_logprobs: [] as Json[],
    text_offset: [] as number[],
  };
  for (const chunk of chunks.slice(0, -1)) {
    const logprobs = chunk.choices[0].logprobs;
    merged.tokens.push(...logprobs.tokens);
    merged.token_logprobs.push(...logprobs.token_logprobs);
    merged.top_logprobs.push(...logprobs.top_logprobs);
    merged.text_offset.push(...logprobs.text_offset);
  }
  assert.deepEqual(merged, expected);
});

test("streamed logprobs keep the same text offsets as the non-streamed ones while a stop string holds text back", async () => {
  const greedy = await greedyHello();
  const stop = greedy.slice(5, 7);
  const request = { prompt: "Hello", temperature: 0, max_tokens: 16, logprobs: 1, stop };
  const expected = (await complete(request)).choices[0].logprobs;
  const chunks = await completeStream(request);
  const offsets: number[] = [];
  const tokens: string[] = [];
  for (const chunk of chunks) {
    const logprobs = chunk.choices[0].logprobs;
    if (logprobs === null) continue;
    tokens.push(...logprobs.tokens);
    offsets.push(...logprobs.text_offset);
  }
  assert.deepEqual(tokens, expected.tokens);
  assert.deepEqual(offsets, expected.text_offset);
});

test("echo together with logprobs, a suffix and best_of above 1 are refused instead of ignored", async () => {
  const base = { model: MODEL, prompt: "Hello", max_tokens: 2 };
  assertError(await postJson(app, "/v1/completions", { ...base, echo: true, logprobs: 1 }), {
    status: 400,
    type: "invalid_request_error",
    code: "unsupported_parameter",
    param: "echo",
  });
  assertError(await postJson(app, "/v1/completions", { ...base, suffix: "!" }), {
    status: 400,
    type: "invalid_request_error",
    code: "unsupported_parameter",
    param: "suffix",
  });
  assertError(await postJson(app, "/v1/completions", { ...base, best_of: 2 }), {
    status: 400,
    type: "invalid_request_error",
    code: "unsupported_parameter",
    param: "best_of",
  });
  await complete({ ...base, suffix: "", best_of: 1, temperature: 0 });
});

test("EOS ends a completion with finish_reason stop unless ignore_eos keeps it going to max_tokens", async (t) => {
  const eosServer = await startFakeServer({ eosAfter: 3 });
  t.after(() => eosServer.app.close());
  const greedy = await greedyHello();

  const stopped = await complete({ prompt: "Hello", temperature: 0, max_tokens: 10 }, eosServer.app);
  // The third token is EOS: two letters of text, three tokens generated.
  assert.deepEqual(stopped.choices[0], { index: 0, text: greedy.slice(0, 2), logprobs: null, finish_reason: "stop" });
  assert.deepEqual(stopped.usage, {
    prompt_tokens: 6,
    completion_tokens: 3,
    total_tokens: 9,
    prompt_tokens_details: { cached_tokens: 0 },
  });

  const ignored = await complete({ prompt: "Hello", temperature: 0, max_tokens: 6, ignore_eos: true }, eosServer.app);
  // EOS tokens have no text, so the text stays at two letters while generation runs on to max_tokens.
  assert.deepEqual(ignored.choices[0], { index: 0, text: greedy.slice(0, 2), logprobs: null, finish_reason: "length" });
  assert.deepEqual(ignored.usage, {
    prompt_tokens: 6,
    completion_tokens: 6,
    total_tokens: 12,
    prompt_tokens_details: { cached_tokens: 0 },
  });
  assert.equal(eosServer.engine.numAcquiredSequences, 0);
});

test("a streamed completion frames every chunk as data: <json> and streams exactly the non-streamed text", async () => {
  const greedy = await greedyHello();
  const chunks = await completeStream({ prompt: "Hello", temperature: 0, max_tokens: 16 });
  assert.equal(chunks.length, 17, "one chunk per token, then the finish chunk");
  const [first] = chunks;
  for (const chunk of chunks) {
    assert.deepEqual(
      Object.keys(chunk).sort(),
      ["choices", "created", "id", "model", "object"],
      "no usage without include_usage",
    );
    assert.match(chunk.id, /^cmpl-[0-9a-f]{32}$/);
    assert.equal(chunk.id, first.id);
    assert.equal(chunk.object, "text_completion");
    assert.equal(chunk.created, first.created);
    assert.equal(chunk.model, MODEL);
  }
  chunks.slice(0, -1).forEach((chunk, index) => {
    assert.deepEqual(chunk.choices, [{ index: 0, text: greedy[index], logprobs: null, finish_reason: null }]);
  });
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, [{ index: 0, text: "", logprobs: null, finish_reason: "length" }]);
  // OpenAI's CreateCompletionResponse requires a non-null finish_reason, so the intermediate chunks (finish_reason
  // null) cannot match it; only the final chunk of a completion stream is validated against the spec.
  assertMatchesSchema("CreateCompletionResponse", last);
  assert.equal(streamedTexts(chunks)[0], greedy);
});

test("stream_options.include_usage adds a last chunk with empty choices and the exact usage before [DONE]", async () => {
  const chunks = await completeStream({
    prompt: "Hello",
    temperature: 0,
    max_tokens: 5,
    stream_options: { include_usage: true },
  });
  assert.equal(chunks.length, 7, "five tokens, the finish chunk and the usage chunk");
  const usageChunk = chunks.at(-1);
  assert.deepEqual(usageChunk.choices, []);
  assert.deepEqual(usageChunk.usage, {
    prompt_tokens: 6,
    completion_tokens: 5,
    total_tokens: 11,
    prompt_tokens_details: { cached_tokens: 0 },
  });
  assertMatchesSchema("CreateCompletionResponse", usageChunk);
  assert.equal(chunks.at(-2).choices[0].finish_reason, "length");
});

test("with include_usage every other streamed completion chunk carries usage null, as OpenAI documents", async () => {
  const chunks = await completeStream({
    prompt: "Hello",
    temperature: 0,
    max_tokens: 3,
    stream_options: { include_usage: true },
  });
  for (const chunk of chunks.slice(0, -1))
    assert.equal(chunk.usage, null, `chunk without usage: null: ${JSON.stringify(chunk)}`);
});

test("a streamed n 2 completion finishes each choice with its own chunk and matches the non-streamed choices", async () => {
  const request = { prompt: "Hello", n: 2, temperature: 1, seed: 99, max_tokens: 6 };
  const expected = (await complete(request)).choices.map((choice: Json) => choice.text);
  const chunks = await completeStream({ ...request, stream_options: { include_usage: true } });
  assert.deepEqual(streamedTexts(chunks), expected);
  const finishes = chunks.filter((chunk) => chunk.choices.length > 0 && chunk.choices[0].finish_reason !== null);
  assert.deepEqual(
    finishes.map((chunk) => chunk.choices).sort((a, b) => a[0].index - b[0].index),
    [
      [{ index: 0, text: "", logprobs: null, finish_reason: "length" }],
      [{ index: 1, text: "", logprobs: null, finish_reason: "length" }],
    ],
  );
  assert.deepEqual(chunks.at(-1).usage, {
    prompt_tokens: 6,
    completion_tokens: 12,
    total_tokens: 18,
    prompt_tokens_details: { cached_tokens: 0 },
  });
});

test("no sequence or queued request is left once every completion request has finished", () => {
  assert.equal(engine.numAcquiredSequences, 0);
  assert.equal(loop.numRunning, 0);
  assert.equal(loop.numWaiting, 0);
});
