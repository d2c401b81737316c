import { AssertionError } from "node:assert";
import assert from "node:assert/strict";
import { test } from "node:test";
import { assertMatchesSchema, getOpenApiValidator } from "../helpers/openapi.ts";

// A fixed, plausible timestamp in seconds keeps the fixtures deterministic.
const CREATED = 1_767_225_600;

function chatCompletion(): Record<string, unknown> {
  return {
    id: "chatcmpl-123",
    object: "chat.completion",
    created: CREATED,
    model: "test-model",
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: "Hello!", refusal: null },
        finish_reason: "stop",
        logprobs: null,
      },
    ],
    usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
  };
}

function chatChunk(): Record<string, unknown> {
  return {
    id: "chatcmpl-123",
    object: "chat.completion.chunk",
    created: CREATED,
    model: "test-model",
    choices: [{ index: 0, delta: { role: "assistant", content: "Hel" }, finish_reason: null, logprobs: null }],
  };
}

function firstChoice(body: Record<string, unknown>): Record<string, unknown> {
  const choices = body.choices;
  assert.ok(Array.isArray(choices));
  const choice: unknown = choices[0];
  assert.ok(typeof choice === "object" && choice !== null);
  return choice as Record<string, unknown>;
}

function rejects(schemaName: string, value: unknown, expectedInErrors: RegExp): void {
  const result = getOpenApiValidator(schemaName)(value);
  assert.equal(result.ok, false, `${schemaName} unexpectedly accepted ${JSON.stringify(value)}`);
  assert.match(result.errors, expectedInErrors);
}

test("a minimal chat completion response matches the schema", () => {
  assertMatchesSchema("CreateChatCompletionResponse", chatCompletion());
});

test("a chat completion without choices is rejected", () => {
  const body = chatCompletion();
  delete body.choices;
  rejects("CreateChatCompletionResponse", body, /must have required property 'choices'/);
});

test("a chat completion with the wrong object type is rejected", () => {
  const body = { ...chatCompletion(), object: "text_completion" };
  rejects(
    "CreateChatCompletionResponse",
    body,
    /^\/object must be equal to one of the allowed values: \["chat\.completion"\]/m,
  );
});

test("a chat completion with an unknown finish_reason is rejected", () => {
  const body = chatCompletion();
  firstChoice(body).finish_reason = "eos";
  rejects(
    "CreateChatCompletionResponse",
    body,
    /^\/choices\/0\/finish_reason must be equal to one of the allowed values/m,
  );
});

test("a chat completion whose usage counts are strings is rejected", () => {
  const body = { ...chatCompletion(), usage: { prompt_tokens: "5", completion_tokens: 2, total_tokens: 7 } };
  rejects("CreateChatCompletionResponse", body, /^\/usage\/prompt_tokens must be integer/m);
});

test("a chat completion message without refusal is rejected because the schema requires it", () => {
  const body = chatCompletion();
  firstChoice(body).message = { role: "assistant", content: "Hello!" };
  rejects("CreateChatCompletionResponse", body, /must have required property 'refusal'/);
});

test("a chat completion choice without logprobs is rejected because the schema requires it", () => {
  const body = chatCompletion();
  delete firstChoice(body).logprobs;
  rejects("CreateChatCompletionResponse", body, /must have required property 'logprobs'/);
});

test("a created timestamp in milliseconds is rejected", () => {
  const body = { ...chatCompletion(), created: CREATED * 1000 };
  rejects("CreateChatCompletionResponse", body, /^\/created must match format "unixtime"/m);
});

test("a minimal text completion response matches the schema", () => {
  assertMatchesSchema("CreateCompletionResponse", {
    id: "cmpl-123",
    object: "text_completion",
    created: CREATED,
    model: "test-model",
    choices: [{ text: "Hello", index: 0, logprobs: null, finish_reason: "length" }],
    usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
  });
});

test("a text completion cannot finish with tool_calls", () => {
  rejects(
    "CreateCompletionResponse",
    {
      id: "cmpl-123",
      object: "text_completion",
      created: CREATED,
      model: "test-model",
      choices: [{ text: "Hello", index: 0, logprobs: null, finish_reason: "tool_calls" }],
    },
    /^\/choices\/0\/finish_reason must be equal to one of the allowed values/m,
  );
});

test("a chat stream chunk with a null finish_reason matches the schema", () => {
  assertMatchesSchema("CreateChatCompletionStreamResponse", chatChunk());
});

test("a chat stream chunk without finish_reason is rejected because the schema requires it", () => {
  const chunk = chatChunk();
  delete firstChoice(chunk).finish_reason;
  rejects("CreateChatCompletionStreamResponse", chunk, /must have required property 'finish_reason'/);
});

test("the final usage-only stream chunk with no choices matches the schema", () => {
  assertMatchesSchema("CreateChatCompletionStreamResponse", {
    ...chatChunk(),
    choices: [],
    usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
  });
});

test("a stream chunk may carry usage: null", () => {
  assertMatchesSchema("CreateChatCompletionStreamResponse", { ...chatChunk(), usage: null });
});

test("a minimal embeddings response matches the schema", () => {
  assertMatchesSchema("CreateEmbeddingResponse", {
    object: "list",
    data: [{ object: "embedding", index: 0, embedding: [0.1, -0.25, 3] }],
    model: "test-embedder",
    usage: { prompt_tokens: 4, total_tokens: 4 },
  });
});

test("a base64 embedding string is rejected because the schema only describes float arrays", () => {
  rejects(
    "CreateEmbeddingResponse",
    {
      object: "list",
      data: [{ object: "embedding", index: 0, embedding: "zczMPQAAgL4AAEBA" }],
      model: "test-embedder",
      usage: { prompt_tokens: 4, total_tokens: 4 },
    },
    /^\/data\/0\/embedding must be array/m,
  );
});

test("an error response with null param and code matches the schema", () => {
  assertMatchesSchema("ErrorResponse", {
    error: { message: "model not found", type: "invalid_request_error", param: null, code: null },
  });
});

test("an error response that omits param and code is rejected because the schema requires them", () => {
  rejects(
    "ErrorResponse",
    { error: { message: "model not found", type: "invalid_request_error" } },
    /must have required property 'param'[\s\S]*must have required property 'code'/,
  );
});

test("a models list matches the schema", () => {
  assertMatchesSchema("ListModelsResponse", {
    object: "list",
    data: [{ id: "test-model", object: "model", created: CREATED, owned_by: "pagoda" }],
  });
});

test("a model without owned_by is rejected", () => {
  rejects("Model", { id: "test-model", object: "model", created: CREATED }, /must have required property 'owned_by'/);
});

test("usage with token details matches the schema", () => {
  assertMatchesSchema("CompletionUsage", {
    prompt_tokens: 10,
    completion_tokens: 2,
    total_tokens: 12,
    prompt_tokens_details: { cached_tokens: 8 },
    completion_tokens_details: { reasoning_tokens: 0 },
  });
});

test("validation leaves the value untouched instead of filling in schema defaults", () => {
  const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, prompt_tokens_details: {} };
  const before = structuredClone(usage);
  assertMatchesSchema("CompletionUsage", usage);
  assert.deepEqual(usage, before);
});

test("assertMatchesSchema throws an AssertionError that names the failing path", () => {
  const body = chatCompletion();
  delete body.choices;
  assert.throws(
    () => assertMatchesSchema("CreateChatCompletionResponse", body, "POST /v1/chat/completions body"),
    (error: unknown) =>
      error instanceof AssertionError &&
      error.message.startsWith("POST /v1/chat/completions body:") &&
      error.message.includes("must have required property 'choices'"),
  );
});

test("asking for a schema the description does not have throws", () => {
  assert.throws(() => getOpenApiValidator("NoSuchSchema"), /"NoSuchSchema" is not a schema/);
});
