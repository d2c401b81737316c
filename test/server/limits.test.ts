import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from "../../src/server/request-limits.ts";
import { FAKE_MODEL_ID, type FakeServer, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, okJson, postJson } from "./support.ts";

const MODEL = FAKE_MODEL_ID;
const HI = [{ role: "user", content: "Hi" }];

async function start(
  t: { after: (fn: () => Promise<void>) => void },
  limits: Partial<RequestLimits> = {},
  bodyLimitBytes?: number,
): Promise<FakeServer> {
  const server = await startFakeServer(
    { contextSize: 256 },
    { limits: { ...DEFAULT_REQUEST_LIMITS, ...limits }, ...(bodyLimitBytes === undefined ? {} : { bodyLimitBytes }) },
  );
  t.after(() => server.app.close());
  return server;
}

test("n above --max-n is a 400 integer_above_max_value that names the limit and the value", async (t) => {
  const { app } = await start(t);
  for (const url of ["/v1/completions", "/v1/chat/completions"]) {
    const body =
      url === "/v1/completions" ? { model: MODEL, prompt: "x", n: 17 } : { model: MODEL, messages: HI, n: 17 };
    const error = assertError(await postJson(app, url, body), {
      status: 400,
      type: "invalid_request_error",
      code: "integer_above_max_value",
      param: "n",
    });
    assert.equal(
      error.message,
      "Invalid 'n': integer above maximum value. Expected a value <= 16, but got 17 instead.",
    );
  }
});

test("a lower --max-n is enforced and n up to it is served", async (t) => {
  const { app } = await start(t, { maxN: 2 });
  assertError(await postJson(app, "/v1/completions", { model: MODEL, prompt: "x", n: 3, max_tokens: 1 }), {
    status: 400,
    type: "invalid_request_error",
    code: "integer_above_max_value",
    param: "n",
  });
  assert.equal(
    okJson(await postJson(app, "/v1/completions", { model: MODEL, prompt: "x", n: 2, max_tokens: 1 })).choices.length,
    2,
  );
});

test("more than four stop strings is a 400 array_above_max_length naming both counts", async (t) => {
  const { app } = await start(t);
  const response = await postJson(app, "/v1/completions", {
    model: MODEL,
    prompt: "x",
    stop: ["a", "b", "c", "d", "e"],
  });
  const error = assertError(response, {
    status: 400,
    type: "invalid_request_error",
    code: "array_above_max_length",
    param: "stop",
  });
  assert.match(error.message, /maximum length 4, but got an array with length 5/);
});

test("a stop string longer than --max-stop-length is a 400 string_above_max_length naming the string", async (t) => {
  const { app } = await start(t, { maxStopLength: 8 });
  const inArray = await postJson(app, "/v1/chat/completions", {
    model: MODEL,
    messages: HI,
    stop: ["ok", "123456789"],
  });
  const error = assertError(inArray, {
    status: 400,
    type: "invalid_request_error",
    code: "string_above_max_length",
    param: "stop[1]",
  });
  assert.equal(
    error.message,
    "Invalid 'stop[1]': string too long. Expected a string with maximum length 8, but got a string with length 9 instead.",
  );
  assertError(await postJson(app, "/v1/completions", { model: MODEL, prompt: "x", stop: "123456789" }), {
    status: 400,
    type: "invalid_request_error",
    code: "string_above_max_length",
    param: "stop",
  });
  okJson(await postJson(app, "/v1/completions", { model: MODEL, prompt: "x", stop: ["12345678"], max_tokens: 1 }));
});

test("max_tokens above --max-tokens-limit is refused under the field name the client used", async (t) => {
  const { app } = await start(t, { maxTokens: 5 });
  const completion = await postJson(app, "/v1/completions", { model: MODEL, prompt: "x", max_tokens: 6 });
  assert.match(
    assertError(completion, {
      status: 400,
      type: "invalid_request_error",
      code: "integer_above_max_value",
      param: "max_tokens",
    }).message,
    /Expected a value <= 5, but got 6 instead/,
  );
  for (const field of ["max_tokens", "max_completion_tokens"]) {
    assertError(await postJson(app, "/v1/chat/completions", { model: MODEL, messages: HI, [field]: 6 }), {
      status: 400,
      type: "invalid_request_error",
      code: "integer_above_max_value",
      param: field,
    });
  }
});

test("a request without max_tokens stops at --max-tokens-limit with finish_reason length", async (t) => {
  const { app } = await start(t, { maxTokens: 5 });
  const chat = okJson(await postJson(app, "/v1/chat/completions", { model: MODEL, messages: HI, temperature: 0 }));
  assert.equal(chat.usage.completion_tokens, 5);
  assert.equal(chat.choices[0].finish_reason, "length");
  // Completions default to 16 tokens as OpenAI's do; the limit lowers that too.
  assert.equal(
    okJson(await postJson(app, "/v1/completions", { model: MODEL, prompt: "x", temperature: 0 })).usage
      .completion_tokens,
    5,
  );
});

test("without a limit, chat without max_tokens still runs to the end of the context and completions default to 16", async (t) => {
  const { app } = await start(t);
  const chat = okJson(
    await postJson(app, "/v1/chat/completions", { model: MODEL, messages: HI, temperature: 0, ignore_eos: true }),
  );
  assert.equal(chat.usage.prompt_tokens + chat.usage.completion_tokens, 256);
  assert.equal(
    okJson(await postJson(app, "/v1/completions", { model: MODEL, prompt: "x", temperature: 0, ignore_eos: true }))
      .usage.completion_tokens,
    16,
  );
});

test("a prompt over --max-prompt-tokens is a 400 context_length_exceeded naming the limit and the count", async (t) => {
  const { app } = await start(t, { maxPromptTokens: 4 });
  // "hello" is 5 characters plus BOS in the fake engine's tokenizer.
  const completion = await postJson(app, "/v1/completions", { model: MODEL, prompt: ["ok", "hello"] });
  const error = assertError(completion, {
    status: 400,
    type: "invalid_request_error",
    code: "context_length_exceeded",
    param: "prompt",
  });
  assert.match(error.message, /at most 4 prompt tokens .* your prompt has 6 tokens/);
  assertError(await postJson(app, "/v1/chat/completions", { model: MODEL, messages: HI }), {
    status: 400,
    type: "invalid_request_error",
    code: "context_length_exceeded",
    param: "messages",
  });
  assertError(await postJson(app, "/v1/embeddings", { model: MODEL, input: ["ok", "hello"] }), {
    status: 400,
    type: "invalid_request_error",
    code: "context_length_exceeded",
    param: "input",
  });
  okJson(await postJson(app, "/v1/completions", { model: MODEL, prompt: "abc", max_tokens: 1 }));
});

test("refusals for exceeding a limit are counted", async (t) => {
  const { app } = await start(t, { maxN: 1 });
  await postJson(app, "/v1/completions", { model: MODEL, prompt: "x", n: 2 });
  const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
  assert.match(metrics, /^pagoda_requests_rejected_total\{reason="limit_exceeded"\} 1$/m);
});

test("the body limit is configurable and answered 413 request_too_large", async (t) => {
  const { app } = await start(t, {}, 2048);
  const response = await postJson(app, "/v1/completions", { model: MODEL, prompt: "x".repeat(3000) });
  assertError(response, { status: 413, type: "invalid_request_error", code: "request_too_large", param: null });
  okJson(await postJson(app, "/v1/completions", { model: MODEL, prompt: "x".repeat(200), max_tokens: 1 }));
});
