import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import type { FakeEngine } from "../../src/engine/fake-engine.ts";
import type { EngineLoop } from "../../src/scheduler/engine-loop.ts";
import { buildApp } from "../../src/server/app.ts";
import { ServingState } from "../../src/server/serving-state.ts";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { assertError, type InjectResponse, type Json, okJson, parseStream, postJson, StepGate } from "./support.ts";

const MODEL = FAKE_MODEL_ID;
const HI = [{ role: "user", content: "Hi" }];

let app: FastifyInstance;
let engine: FakeEngine;
let loop: EngineLoop;

before(async () => {
  ({ app, engine, loop } = await startFakeServer());
});

after(async () => {
  await app.close();
});

interface ValidationCase {
  readonly what: string;
  readonly url: string;
  readonly body: Record<string, unknown>;
  readonly param: string;
}

const VALIDATION_CASES: ValidationCase[] = [
  {
    what: "an unknown message role",
    url: "/v1/chat/completions",
    body: { model: MODEL, messages: [{ role: "wizard", content: "x" }] },
    param: "messages[0].role",
  },
  {
    what: "a message content of the wrong type",
    url: "/v1/chat/completions",
    body: { model: MODEL, messages: [...HI, { role: "user", content: 5 }] },
    param: "messages[1].content",
  },
  {
    what: "an empty messages array",
    url: "/v1/chat/completions",
    body: { model: MODEL, messages: [] },
    param: "messages",
  },
  {
    what: "max_completion_tokens 0",
    url: "/v1/chat/completions",
    body: { model: MODEL, messages: HI, max_completion_tokens: 0 },
    param: "max_completion_tokens",
  },
  {
    what: "temperature 3",
    url: "/v1/completions",
    body: { model: MODEL, prompt: "x", temperature: 3 },
    param: "temperature",
  },
  {
    what: "max_tokens 0",
    url: "/v1/completions",
    body: { model: MODEL, prompt: "x", max_tokens: 0 },
    param: "max_tokens",
  },
  { what: "n 0", url: "/v1/completions", body: { model: MODEL, prompt: "x", n: 0 }, param: "n" },
  { what: "a model that is not a string", url: "/v1/completions", body: { model: 7, prompt: "x" }, param: "model" },
  { what: "a prompt of the wrong type", url: "/v1/completions", body: { model: MODEL, prompt: 42 }, param: "prompt" },
  { what: "top_p 0", url: "/v1/completions", body: { model: MODEL, prompt: "x", top_p: 0 }, param: "top_p" },
  { what: "a fractional seed", url: "/v1/completions", body: { model: MODEL, prompt: "x", seed: 1.5 }, param: "seed" },
  {
    what: "a stop list of the wrong type",
    url: "/v1/completions",
    body: { model: MODEL, prompt: "x", stop: ["a", 5] },
    param: "stop",
  },
  {
    what: "an unknown encoding_format",
    url: "/v1/embeddings",
    body: { model: MODEL, input: "x", encoding_format: "int8" },
    param: "encoding_format",
  },
];

for (const { what, url, body, param } of VALIDATION_CASES) {
  test(`${what} on ${url} is a 400 whose param is ${param}`, async () => {
    const error = assertError(await postJson(app, url, body), {
      status: 400,
      type: "invalid_request_error",
      code: null,
      param,
    });
    assert.ok(error.message.includes(param), `the message names the field: ${error.message}`);
  });
}

test("a body that is not valid JSON is a 400 with code invalid_json", async () => {
  const response = await app.inject({
    method: "POST",
    url: "/v1/completions",
    headers: { "content-type": "application/json" },
    payload: '{"model": "fake-model", "prompt": ',
  });
  assertError(response, { status: 400, type: "invalid_request_error", code: "invalid_json", param: null });
});

test("an empty JSON body is a 400 with code invalid_json", async () => {
  const response = await app.inject({
    method: "POST",
    url: "/v1/completions",
    headers: { "content-type": "application/json" },
    payload: "",
  });
  assertError(response, { status: 400, type: "invalid_request_error", code: "invalid_json", param: null });
});

test("a JSON body that is not an object is a 400 whose param is null rather than an empty string", async () => {
  const response = await app.inject({
    method: "POST",
    url: "/v1/completions",
    headers: { "content-type": "application/json" },
    payload: "[]",
  });
  assertError(response, { status: 400, type: "invalid_request_error", code: null, param: null });
});

test("a body sent as XML or form data is a 415 unsupported_media_type", async () => {
  for (const contentType of ["application/xml", "application/x-www-form-urlencoded"]) {
    const response = await app.inject({
      method: "POST",
      url: "/v1/completions",
      headers: { "content-type": contentType },
      payload: "prompt=Hi",
    });
    assertError(response, { status: 415, type: "invalid_request_error", code: "unsupported_media_type", param: null });
  }
});

test("a text/plain body is a 415 unsupported_media_type like any other non-JSON content type", async () => {
  const response = await app.inject({
    method: "POST",
    url: "/v1/completions",
    headers: { "content-type": "text/plain" },
    payload: "prompt=Hi",
  });
  assertError(response, { status: 415, type: "invalid_request_error", code: "unsupported_media_type", param: null });
});

test("a body above the configured limit is a 413 while one below it is served", async (t) => {
  const small = await startFakeServer({}, { bodyLimitBytes: 256 });
  t.after(() => small.app.close());
  const tooLarge = { model: MODEL, prompt: "x".repeat(300), max_tokens: 1 };
  assert.ok(JSON.stringify(tooLarge).length > 256);
  assertError(await postJson(small.app, "/v1/completions", tooLarge), {
    status: 413,
    type: "invalid_request_error",
    code: "request_too_large",
    param: null,
  });
  const fits = { model: MODEL, prompt: "x".repeat(100), max_tokens: 1 };
  assert.ok(JSON.stringify(fits).length < 256);
  assert.equal(okJson(await postJson(small.app, "/v1/completions", fits)).usage.prompt_tokens, 101);
  assert.equal(small.engine.numAcquiredSequences, 0);
});

test("an unknown route is a 404 with code unknown_url naming the method and path without the query", async () => {
  const error = assertError(await app.inject({ method: "GET", url: "/v1/nothing?x=1" }), {
    status: 404,
    type: "invalid_request_error",
    code: "unknown_url",
    param: null,
  });
  assert.equal(error.message, "Unknown route GET /v1/nothing");
  assertError(await postJson(app, "/v1/completion", { model: MODEL, prompt: "x" }), {
    status: 404,
    type: "invalid_request_error",
    code: "unknown_url",
    param: null,
  });
});

test("a model this server does not serve is a 404 model_not_found on every model route", async () => {
  const requests: [string, Record<string, unknown>][] = [
    ["/v1/completions", { model: "gpt-4o", prompt: "x" }],
    ["/v1/chat/completions", { model: "gpt-4o", messages: HI }],
    ["/v1/embeddings", { model: "gpt-4o", input: "x" }],
  ];
  for (const [url, body] of requests) {
    const error = assertError(await postJson(app, url, body), {
      status: 404,
      type: "invalid_request_error",
      code: "model_not_found",
      param: "model",
    });
    assert.ok(error.message.includes("gpt-4o"), error.message);
  }
});

test("a prompt that does not fit the context with max_tokens is a 400 context_length_exceeded", async (t) => {
  const small = await startFakeServer({ contextSize: 32 });
  t.after(() => small.app.close());
  const tooLong = assertError(
    await postJson(small.app, "/v1/completions", { model: MODEL, prompt: "x".repeat(40), max_tokens: 1 }),
    {
      status: 400,
      type: "invalid_request_error",
      code: "context_length_exceeded",
      param: "prompt",
    },
  );
  assert.ok(tooLong.message.includes("32"), tooLong.message);
  // 21 prompt tokens plus the default 16 completion tokens exceed 32.
  assertError(await postJson(small.app, "/v1/completions", { model: MODEL, prompt: "x".repeat(20) }), {
    status: 400,
    type: "invalid_request_error",
    code: "context_length_exceeded",
    param: "prompt",
  });
  assertError(
    await postJson(small.app, "/v1/chat/completions", {
      model: MODEL,
      messages: [{ role: "user", content: "x".repeat(20) }],
    }),
    {
      status: 400,
      type: "invalid_request_error",
      code: "context_length_exceeded",
      param: "messages",
    },
  );
  assert.equal(small.engine.steps.length, 0, "refused requests never reach the engine");

  // With max_tokens 8 the same prompt fits: 21 + 8 <= 32.
  const fits = okJson(
    await postJson(small.app, "/v1/completions", {
      model: MODEL,
      prompt: "x".repeat(20),
      max_tokens: 8,
      temperature: 0,
    }),
  );
  assert.deepEqual(fits.usage, {
    prompt_tokens: 21,
    completion_tokens: 8,
    total_tokens: 29,
    prompt_tokens_details: { cached_tokens: 0 },
  });
  assert.equal(small.engine.numAcquiredSequences, 0);
});

test("a prompt token id outside the vocabulary is a 400 naming the prompt", async () => {
  const vocabSize = engine.info.vocabSize;
  for (const prompt of [
    [1, vocabSize],
    [
      [1, 2],
      [1, vocabSize + 100],
    ],
  ]) {
    const error = assertError(await postJson(app, "/v1/completions", { model: MODEL, prompt }), {
      status: 400,
      type: "invalid_request_error",
      code: null,
      param: "prompt",
    });
    assert.ok(error.message.includes(String(vocabSize)), error.message);
  }
});

test("a full queue answers 429 with Retry-After while queued requests are still served", async (t) => {
  const gate = new StepGate();
  const server = await startFakeServer({ numSequences: 1, beforeStep: gate.beforeStep }, { maxNumWaiting: 1 });
  t.after(async () => {
    gate.releaseAll();
    await server.app.close();
  });
  const request = { model: MODEL, prompt: "Hello", max_tokens: 2, temperature: 0 };
  const hold = gate.holdAt(0);
  const running = postJson(server.app, "/v1/completions", request);
  await hold.reached;
  assert.equal(server.engine.numAcquiredSequences, 1, "the first request holds the only sequence");

  // One of these two waits in the queue's only slot; the other finds the queue full and is answered at once.
  const second = postJson(server.app, "/v1/completions", request);
  const third = postJson(server.app, "/v1/completions", request);
  const refused: InjectResponse = await Promise.race([second, third]);
  assertError(refused, { status: 429, type: "rate_limit_error", code: "queue_full", param: null });
  assert.equal(refused.headers["retry-after"], "1");
  assert.equal(server.loop.numWaiting, 1);

  hold.release();
  const responses = await Promise.all([running, second, third]);
  assert.deepEqual(responses.map((response) => response.statusCode).sort(), [200, 200, 429]);
  const texts = responses
    .filter((response) => response.statusCode === 200)
    .map((response) => JSON.parse(response.body).choices[0].text);
  assert.equal(texts[0], texts[1], "the queued request is served in full after the running one");
  assert.equal(server.engine.numAcquiredSequences, 0);
  assert.equal(server.loop.numWaiting, 0);
});

test("a request whose choices do not all fit the queue is refused whole and none of its choices runs", async (t) => {
  const gate = new StepGate();
  const server = await startFakeServer({ numSequences: 1, beforeStep: gate.beforeStep }, { maxNumWaiting: 1 });
  t.after(async () => {
    gate.releaseAll();
    await server.app.close();
  });
  const hold = gate.holdAt(0);
  const running = postJson(server.app, "/v1/completions", {
    model: MODEL,
    prompt: "Hello",
    max_tokens: 2,
    temperature: 0,
  });
  await hold.reached;

  const refused = await postJson(server.app, "/v1/completions", { model: MODEL, prompt: "QQ", n: 2, max_tokens: 2 });
  assertError(refused, { status: 429, type: "rate_limit_error", code: "queue_full", param: null });
  assert.equal(refused.headers["retry-after"], "1");

  hold.release();
  assert.equal((await running).statusCode, 200);
  const refusedPrompt = server.engine.tokenize("QQ", { addBos: true });
  const ranRefused = server.engine.steps.some((items) =>
    items.some((item) => item.startPos === 0 && item.tokens.join() === refusedPrompt.join()),
  );
  assert.equal(ranRefused, false, "the choice that had been queued was withdrawn");
  assert.equal(server.loop.numWaiting, 0);
  assert.equal(server.engine.numAcquiredSequences, 0);
});

test("an engine failure is a 500 server_error and the server goes on serving the next request", async () => {
  engine.failNextStep(new Error("native decode failed"));
  const error = assertError(await postJson(app, "/v1/completions", { model: MODEL, prompt: "Hello", max_tokens: 3 }), {
    status: 500,
    type: "server_error",
    code: "engine_error",
    param: null,
  });
  assert.ok(!error.message.includes("native decode failed"), "internal error details are not sent to clients");
  assert.equal(engine.numAcquiredSequences, 0, "the failed request released its sequence");

  const next = okJson(
    await postJson(app, "/v1/completions", { model: MODEL, prompt: "Hello", max_tokens: 3, temperature: 0 }),
  );
  assert.equal(next.choices[0].finish_reason, "length");
  assert.deepEqual(next.usage, {
    prompt_tokens: 6,
    completion_tokens: 3,
    total_tokens: 9,
    prompt_tokens_details: { cached_tokens: 0 },
  });

  engine.failNextStep(new Error("native decode failed"));
  assertError(await postJson(app, "/v1/chat/completions", { model: MODEL, messages: HI, max_tokens: 3 }), {
    status: 500,
    type: "server_error",
    code: "engine_error",
    param: null,
  });
  okJson(await postJson(app, "/v1/chat/completions", { model: MODEL, messages: HI, max_tokens: 3 }));
});

test("an engine failure during a stream sends an error frame and still ends with [DONE]", async () => {
  engine.failNextStep(new Error("native decode failed"));
  const { chunks } = parseStream(
    await postJson(app, "/v1/completions", { model: MODEL, prompt: "Hello", max_tokens: 3, stream: true }),
  );
  assert.equal(chunks.length, 1);
  assertMatchesSchema("ErrorResponse", chunks[0]);
  assert.equal(chunks[0].error.type, "server_error");
  assert.equal(chunks[0].error.code, "engine_error");

  engine.failNextStep(new Error("native decode failed"));
  const chat = parseStream(
    await postJson(app, "/v1/chat/completions", { model: MODEL, messages: HI, max_tokens: 3, stream: true }),
  );
  assert.equal(chat.chunks.length, 2, "the role chunk, then the error");
  assert.equal(chat.chunks[0].choices[0].delta.role, "assistant");
  assertMatchesSchema("ErrorResponse", chat.chunks[1]);
  assert.equal(chat.chunks[1].error.code, "engine_error");
  assert.equal(engine.numAcquiredSequences, 0);
});

test("every route answers 503 with Retry-After while the model is still loading", async (t) => {
  const serving = new ServingState();
  const loading = await buildApp({ serving });
  t.after(() => loading.close());
  const requests: [string, string, Record<string, unknown> | undefined][] = [
    ["POST", "/v1/completions", { model: MODEL, prompt: "x" }],
    ["POST", "/v1/chat/completions", { model: MODEL, messages: HI }],
    ["POST", "/v1/embeddings", { model: MODEL, input: "x" }],
    ["POST", "/tokenize", { prompt: "x" }],
    ["POST", "/detokenize", { tokens: [2] }],
    ["GET", "/v1/models", undefined],
    ["GET", `/v1/models/${MODEL}`, undefined],
  ];
  for (const [method, url, body] of requests) {
    const response: InjectResponse =
      body === undefined ? await loading.inject({ method: "GET", url }) : await postJson(loading, url, body);
    const error: Json = assertError(response, {
      status: 503,
      type: "service_unavailable",
      code: "service_unavailable",
      param: null,
    });
    assert.equal(response.headers["retry-after"], "5", `${method} ${url}`);
    assert.match(error.message, /loading/);
  }
});

test("generation routes answer 503 with Retry-After once the server is closing", async (t) => {
  const server = await startFakeServer();
  t.after(() => server.app.close());
  okJson(await postJson(server.app, "/v1/completions", { model: MODEL, prompt: "x", max_tokens: 1 }));
  server.serving.markClosing();
  for (const [url, body] of [
    ["/v1/completions", { model: MODEL, prompt: "x", max_tokens: 1 }],
    ["/v1/chat/completions", { model: MODEL, messages: HI, max_tokens: 1 }],
  ] as const) {
    const response = await postJson(server.app, url, body);
    const error = assertError(response, {
      status: 503,
      type: "service_unavailable",
      code: "service_unavailable",
      param: null,
    });
    assert.equal(response.headers["retry-after"], "5");
    assert.match(error.message, /shutting down/);
  }
  assert.equal(server.engine.numAcquiredSequences, 0);
});

test("no sequence or queued request is left once every request of this file has finished", () => {
  assert.equal(engine.numAcquiredSequences, 0);
  assert.equal(loop.numRunning, 0);
  assert.equal(loop.numWaiting, 0);
});
