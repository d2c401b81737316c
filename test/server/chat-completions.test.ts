import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import type { ChatMessage } from "../../src/engine/engine.ts";
import type { FakeEngine } from "../../src/engine/fake-engine.ts";
import type { EngineLoop } from "../../src/scheduler/engine-loop.ts";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { assertError, type Json, okJson, parseStream, postJson } from "./support.ts";

const MODEL = FAKE_MODEL_ID;
const HI: ChatMessage[] = [{ role: "user", content: "Hi" }];

let app: FastifyInstance;
let engine: FakeEngine;
let loop: EngineLoop;

before(async () => {
  ({ app, engine, loop } = await startFakeServer());
});

after(async () => {
  await app.close();
});

async function chat(body: Record<string, unknown>, server: FastifyInstance = app): Promise<Json> {
  const json = okJson(await postJson(server, "/v1/chat/completions", { model: MODEL, messages: HI, ...body }));
  assertMatchesSchema("CreateChatCompletionResponse", json);
  return json;
}

/** Every chunk of a chat stream, each validated against OpenAI's chunk schema. */
async function chatStream(body: Record<string, unknown>, server: FastifyInstance = app): Promise<Json[]> {
  const { chunks } = parseStream(
    await postJson(server, "/v1/chat/completions", { model: MODEL, messages: HI, stream: true, ...body }),
  );
  for (const chunk of chunks) assertMatchesSchema("CreateChatCompletionStreamResponse", chunk);
  return chunks;
}

/** Concatenated delta content of each choice index. */
function streamedContents(chunks: Json[]): string[] {
  const contents: string[] = [];
  for (const chunk of chunks) {
    for (const choice of chunk.choices)
      contents[choice.index] = (contents[choice.index] ?? "") + (choice.delta.content ?? "");
  }
  return contents;
}

/** Prompt tokens of a conversation: the rendered template including BOS. */
function promptTokens(messages: readonly ChatMessage[]): number {
  return engine.renderChat(messages).tokens.length;
}

test("a non-streamed chat completion matches OpenAI's schema with refusal null, logprobs null and exact usage", async () => {
  const body = await chat({ temperature: 0, max_tokens: 5 });
  assert.match(body.id, /^chatcmpl-[0-9a-f]{32}$/);
  assert.equal(body.object, "chat.completion");
  assert.equal(body.model, MODEL);
  assert.ok(Number.isInteger(body.created));
  assert.equal(body.choices.length, 1);
  const [choice] = body.choices;
  assert.match(choice.message.content, /^[a-z]{5}$/);
  assert.deepEqual(choice, {
    index: 0,
    message: { role: "assistant", content: choice.message.content, refusal: null },
    logprobs: null,
    finish_reason: "length",
  });
  // "<user>Hi<end><assistant>" is 24 characters, one token each, after BOS.
  assert.equal(promptTokens(HI), 25);
  assert.deepEqual(body.usage, {
    prompt_tokens: 25,
    completion_tokens: 5,
    total_tokens: 30,
    prompt_tokens_details: { cached_tokens: 0 },
  });
});

test("the assistant text equals a plain completion of the rendered chat prompt", async () => {
  const body = await chat({ temperature: 0, max_tokens: 7 });
  const completion = okJson(
    await postJson(app, "/v1/completions", {
      model: MODEL,
      prompt: engine.renderChat(HI).tokens,
      temperature: 0,
      max_tokens: 7,
    }),
  );
  assert.equal(body.choices[0].message.content, completion.choices[0].text);
});

test("a streamed chat completion opens with the assistant role, gives every chunk a finish_reason key and finishes before [DONE]", async () => {
  const expected = (await chat({ temperature: 0, max_tokens: 6 })).choices[0].message.content;
  const chunks = await chatStream({ temperature: 0, max_tokens: 6 });
  assert.equal(chunks.length, 8, "the role chunk, one chunk per token and the finish chunk");
  const [first] = chunks;
  assert.deepEqual(first.choices, [
    { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
  ]);
  for (const chunk of chunks) {
    assert.match(chunk.id, /^chatcmpl-[0-9a-f]{32}$/);
    assert.equal(chunk.id, first.id);
    assert.equal(chunk.object, "chat.completion.chunk");
    assert.equal(chunk.created, first.created);
    assert.equal(chunk.model, MODEL);
    assert.ok(!("usage" in chunk), "no usage key without include_usage");
    for (const choice of chunk.choices)
      assert.ok("finish_reason" in choice, "every choice carries a finish_reason key");
  }
  chunks.slice(1, -1).forEach((chunk, index) => {
    assert.deepEqual(chunk.choices, [
      { index: 0, delta: { content: expected[index] }, logprobs: null, finish_reason: null },
    ]);
  });
  assert.deepEqual(chunks.at(-1).choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: "length" }]);
  assert.deepEqual(streamedContents(chunks), [expected]);
});

test("include_usage puts usage null on every chat chunk and the exact usage in a last chunk with no choices", async () => {
  const chunks = await chatStream({ temperature: 0, max_tokens: 3, stream_options: { include_usage: true } });
  assert.equal(chunks.length, 6, "role, three tokens, finish, usage");
  for (const chunk of chunks.slice(0, -1)) assert.equal(chunk.usage, null);
  assert.equal(chunks.at(-2).choices[0].finish_reason, "length", "the finish chunk comes right before the usage chunk");
  assert.deepEqual(chunks.at(-1).choices, []);
  // The first test sent this 25-token prompt already: its first full block (16 tokens) comes from the prefix cache.
  assert.deepEqual(chunks.at(-1).usage, {
    prompt_tokens: 25,
    completion_tokens: 3,
    total_tokens: 28,
    prompt_tokens_details: { cached_tokens: 16 },
  });
});

test("max_completion_tokens caps the completion and takes precedence over max_tokens", async () => {
  const longer = await chat({ temperature: 0, max_tokens: 10 });
  const body = await chat({ temperature: 0, max_tokens: 10, max_completion_tokens: 3 });
  assert.equal(body.choices[0].message.content, longer.choices[0].message.content.slice(0, 3));
  assert.equal(body.choices[0].finish_reason, "length");
  assert.deepEqual(body.usage, {
    prompt_tokens: 25,
    completion_tokens: 3,
    total_tokens: 28,
    prompt_tokens_details: { cached_tokens: 16 },
  });
});

test("logprobs with top_logprobs 2 reports every token's logprob, bytes and two alternatives, streamed or not", async () => {
  const body = await chat({ temperature: 0, max_tokens: 4, logprobs: true, top_logprobs: 2 });
  const letters = [...body.choices[0].message.content];
  assert.equal(letters.length, 4);
  const bytes = (text: string): number[] => [...Buffer.from(text, "utf8")];
  // The FakeEngine gives every sampled token logprob -0.5 and token 2 (a space) as the runner-up at -1.5.
  const expected = letters.map((letter) => ({
    token: letter,
    logprob: -0.5,
    bytes: bytes(letter),
    top_logprobs: [
      { token: letter, logprob: -0.5, bytes: bytes(letter) },
      { token: " ", logprob: -1.5, bytes: [32] },
    ],
  }));
  assert.deepEqual(body.choices[0].logprobs, { content: expected, refusal: null });

  const chunks = await chatStream({ temperature: 0, max_tokens: 4, logprobs: true, top_logprobs: 2 });
  const streamed = chunks.flatMap((chunk) => chunk.choices.flatMap((choice: Json) => choice.logprobs?.content ?? []));
  assert.deepEqual(streamed, expected);
  for (const chunk of chunks.slice(1, -1)) assert.equal(chunk.choices[0].logprobs.refusal, null);
});

test("content given as an array of text parts is the same conversation as the joined string", async () => {
  const asString = await chat({ temperature: 0, max_tokens: 6 });
  const asParts = await chat({
    temperature: 0,
    max_tokens: 6,
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: "H" },
          { type: "text", text: "i" },
        ],
      },
    ],
  });
  assert.equal(asParts.choices[0].message.content, asString.choices[0].message.content);
  assert.deepEqual(asParts.usage, asString.usage);
});

test("a system message and earlier turns are all part of the prompt", async () => {
  const messages: ChatMessage[] = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello" },
    { role: "user", content: "Again" },
  ];
  const body = await chat({ temperature: 0, max_tokens: 2, messages });
  assert.deepEqual(body.usage, {
    prompt_tokens: promptTokens(messages),
    completion_tokens: 2,
    total_tokens: promptTokens(messages) + 2,
    prompt_tokens_details: { cached_tokens: 0 },
  });
  assert.equal(
    promptTokens(messages),
    1 + "<system>Be brief.<end><user>Hi<end><assistant>Hello<end><user>Again<end><assistant>".length,
  );
});

test("n 2 with a seed samples two different choices, and streams a role chunk and a finish chunk for each", async () => {
  const request = { temperature: 1, seed: 3, n: 2, max_tokens: 5 };
  const body = await chat(request);
  assert.deepEqual(
    body.choices.map((choice: Json) => choice.index),
    [0, 1],
  );
  const contents: string[] = body.choices.map((choice: Json) => choice.message.content);
  assert.notEqual(contents[0], contents[1]);
  assert.deepEqual(body.usage, {
    prompt_tokens: 25,
    completion_tokens: 10,
    total_tokens: 35,
    prompt_tokens_details: { cached_tokens: 16 },
  });

  const chunks = await chatStream(request);
  assert.deepEqual(
    chunks.slice(0, 2).map((chunk) => chunk.choices),
    [
      [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
      [{ index: 1, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
    ],
  );
  assert.deepEqual(streamedContents(chunks), contents, "the same seed gives the same choices streamed");
  const finishes = chunks
    .filter((chunk) => chunk.choices[0].finish_reason !== null)
    .map((chunk) => chunk.choices[0].index);
  assert.deepEqual(finishes.sort(), [0, 1]);
});

test("a stop string ends the assistant text before its first occurrence with finish_reason stop", async () => {
  const full: string = (await chat({ temperature: 0, max_tokens: 12 })).choices[0].message.content;
  const stop = full.slice(4, 6);
  const cut = full.indexOf(stop);
  assert.ok(cut > 0, "precondition: the stop string occurs after the first character");
  const body = await chat({ temperature: 0, max_tokens: 12, stop: [stop] });
  assert.equal(body.choices[0].message.content, full.slice(0, cut));
  assert.equal(body.choices[0].finish_reason, "stop");
  const chunks = await chatStream({ temperature: 0, max_tokens: 12, stop });
  assert.deepEqual(streamedContents(chunks), [full.slice(0, cut)]);
  assert.equal(chunks.at(-1).choices[0].finish_reason, "stop");
});

test("without max_tokens a chat completion runs until EOS and finishes with stop", async (t) => {
  const eosServer = await startFakeServer({ eosAfter: 4 });
  t.after(() => eosServer.app.close());
  const greedy: string = (await chat({ temperature: 0, max_tokens: 3 })).choices[0].message.content;

  const body = await chat({ temperature: 0 }, eosServer.app);
  assert.deepEqual(body.choices[0].message, { role: "assistant", content: greedy, refusal: null });
  assert.equal(body.choices[0].finish_reason, "stop");
  assert.deepEqual(
    body.usage,
    { prompt_tokens: 25, completion_tokens: 4, total_tokens: 29, prompt_tokens_details: { cached_tokens: 0 } },
    "EOS counts as a completion token",
  );

  const chunks = await chatStream({ temperature: 0 }, eosServer.app);
  assert.deepEqual(streamedContents(chunks), [greedy]);
  assert.deepEqual(chunks.at(-1).choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]);
  assert.equal(eosServer.engine.numAcquiredSequences, 0);
});

test("a response_format of an unknown type is a 400 naming it, while text is accepted", async () => {
  assertError(
    await postJson(app, "/v1/chat/completions", {
      model: MODEL,
      messages: HI,
      response_format: { type: "xml" },
    }),
    {
      status: 400,
      type: "invalid_request_error",
      code: null,
      param: "response_format.type",
    },
  );
  await chat({ response_format: { type: "text" }, temperature: 0, max_tokens: 1 });
});

test("an image content part is refused with param naming the part", async () => {
  const messages = [
    {
      role: "user",
      content: [
        { type: "text", text: "What is this?" },
        { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } },
      ],
    },
  ];
  assertError(await postJson(app, "/v1/chat/completions", { model: MODEL, messages }), {
    status: 400,
    type: "invalid_request_error",
    code: "unsupported_parameter",
    param: "messages[0].content[1]",
  });
});

test("top_logprobs without logprobs true is refused", async () => {
  assertError(await postJson(app, "/v1/chat/completions", { model: MODEL, messages: HI, top_logprobs: 2 }), {
    status: 400,
    type: "invalid_request_error",
    code: null,
    param: "top_logprobs",
  });
  assertError(
    await postJson(app, "/v1/chat/completions", { model: MODEL, messages: HI, logprobs: false, top_logprobs: 2 }),
    {
      status: 400,
      type: "invalid_request_error",
      code: null,
      param: "top_logprobs",
    },
  );
});

test("no sequence or queued request is left once every chat request has finished", () => {
  assert.equal(engine.numAcquiredSequences, 0);
  assert.equal(loop.numRunning, 0);
  assert.equal(loop.numWaiting, 0);
});
