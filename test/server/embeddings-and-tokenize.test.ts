import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { EmbeddingQueueFullError } from "../../src/engine/embedding-batcher.ts";
import type { FakeEngine } from "../../src/engine/fake-engine.ts";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { asTokenIds } from "../helpers/ids.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { assertError, type Json, okJson, postJson } from "./support.ts";

const MODEL = FAKE_MODEL_ID;
/** BOS, then "hello": the FakeEngine maps character c to token c - 32 + 2. */
const HELLO_TOKENS = [1, 74, 71, 78, 78, 81];

let app: FastifyInstance;
let engine: FakeEngine;

before(async () => {
  ({ app, engine } = await startFakeServer());
});

after(async () => {
  await app.close();
});

async function embed(body: Record<string, unknown>): Promise<Json> {
  return okJson(await postJson(app, "/v1/embeddings", { model: MODEL, ...body }));
}

/** The FakeEngine's own embedding of some tokens, as the oracle for what the route returns. */
/** The engine's vector at unit length, as the route returns it by default. */
async function expectedEmbedding(tokens: number[]): Promise<number[]> {
  const [result] = await engine.embed([asTokenIds(tokens)]);
  assert.ok(result !== undefined);
  const scale = 1 / result.embedding.reduce((sum, value) => sum + Math.abs(value) ** 2, 0) ** (1 / 2);
  return result.embedding.map((value) => value * scale);
}

function decodeBase64Floats(base64: string): number[] {
  const bytes = Buffer.from(base64, "base64");
  assert.equal(bytes.length % 4, 0);
  return Array.from({ length: bytes.length / 4 }, (_, index) => bytes.readFloatLE(index * 4));
}

test("a string input returns one float embedding of the model's size with usage counting BOS", async () => {
  const body = await embed({ input: "hello" });
  assertMatchesSchema("CreateEmbeddingResponse", body);
  assert.equal(body.data[0].embedding.length, 8);
  assert.deepEqual(body, {
    object: "list",
    data: [{ object: "embedding", index: 0, embedding: await expectedEmbedding(HELLO_TOKENS) }],
    model: MODEL,
    usage: { prompt_tokens: 6, total_tokens: 6 },
  });
  assert.deepEqual(await embed({ input: "hello", encoding_format: "float" }), body, "float is the default encoding");
});

test("vectors are unit length unless embd_normalize or normalize asks otherwise", async () => {
  const [raw] = await engine.embed([asTokenIds(HELLO_TOKENS)]);
  const unit = await embed({ input: "hello" });
  assert.ok(Math.abs(Math.hypot(...unit.data[0].embedding) - 1) < 1e-12);
  for (const fields of [{ embd_normalize: -1 }, { normalize: false }]) {
    assert.deepEqual((await embed({ input: "hello", ...fields })).data[0].embedding, raw?.embedding);
  }
  const taxicab = (await embed({ input: "hello", embd_normalize: 1 })).data[0].embedding as number[];
  assert.ok(Math.abs(taxicab.reduce((sum, value) => sum + Math.abs(value), 0) - 1) < 1e-12);
  const int16 = (await embed({ input: "hello", embd_normalize: 0 })).data[0].embedding as number[];
  assert.ok(Math.abs(Math.max(...int16.map(Math.abs)) - 32760) < 1e-9);
});

test("base64 encoding carries the same vector as little-endian float32", async () => {
  const floats = await embed({ input: "hello" });
  const base64 = await embed({ input: "hello", encoding_format: "base64" });
  const encoded = base64.data[0].embedding;
  assert.equal(typeof encoded, "string");
  assert.match(encoded, /^[A-Za-z0-9+/]+={0,2}$/);
  assert.deepEqual(
    decodeBase64Floats(encoded),
    floats.data[0].embedding.map((value: number) => Math.fround(value)),
  );
  assert.deepEqual(base64.usage, floats.usage);
  assert.equal(base64.data[0].index, 0);
  assert.equal(base64.data[0].object, "embedding");
});

test("an array of strings returns one embedding per input in order, with usage summed", async () => {
  const body = await embed({ input: ["a", "bc"] });
  assertMatchesSchema("CreateEmbeddingResponse", body);
  assert.deepEqual(
    body.data.map((item: Json) => item.index),
    [0, 1],
  );
  assert.deepEqual(body.data[0].embedding, (await embed({ input: "a" })).data[0].embedding);
  assert.deepEqual(body.data[1].embedding, (await embed({ input: "bc" })).data[0].embedding);
  assert.notDeepEqual(body.data[0].embedding, body.data[1].embedding);
  assert.deepEqual(body.usage, { prompt_tokens: 2 + 3, total_tokens: 5 });
});

test("token inputs are embedded verbatim: a token array equals the same text, and arrays of token arrays work", async () => {
  const text = await embed({ input: "hello" });
  const tokens = await embed({ input: HELLO_TOKENS });
  assertMatchesSchema("CreateEmbeddingResponse", tokens);
  assert.deepEqual(tokens.data, text.data);
  assert.deepEqual(tokens.usage, { prompt_tokens: 6, total_tokens: 6 });

  const nested = await embed({ input: [HELLO_TOKENS, [40, 41]] });
  assert.deepEqual(nested.data[0].embedding, text.data[0].embedding);
  assert.deepEqual(nested.data[1].embedding, await expectedEmbedding([40, 41]));
  assert.deepEqual(nested.usage, { prompt_tokens: 8, total_tokens: 8 }, "no BOS is added to token inputs");
});

test("dimensions shortens a vector to its first values, normalised after (Matryoshka); more than the model has is refused", async () => {
  const full = await embed({ input: "hello", normalize: false });
  assert.equal((await embed({ input: "hello", dimensions: 8 })).data[0].embedding.length, 8);
  const short: number[] = (await embed({ input: "hello", dimensions: 4 })).data[0].embedding;
  const head: number[] = full.data[0].embedding.slice(0, 4);
  const norm = Math.hypot(...head);
  assert.deepEqual(
    short.map((value) => value.toFixed(12)),
    head.map((value) => (value / norm).toFixed(12)),
  );
  assertError(await postJson(app, "/v1/embeddings", { model: MODEL, input: "hello", dimensions: 9 }), {
    status: 400,
    type: "invalid_request_error",
    code: "unsupported_parameter",
    param: "dimensions",
  });
});

test("an empty string input is refused with param naming the input", async () => {
  const single = assertError(await postJson(app, "/v1/embeddings", { model: MODEL, input: "" }), {
    status: 400,
    type: "invalid_request_error",
    code: null,
  });
  assert.match(single.param, /^input/);
  assertError(await postJson(app, "/v1/embeddings", { model: MODEL, input: ["a", ""] }), {
    status: 400,
    type: "invalid_request_error",
    code: null,
    param: "input[1]",
  });
  assertError(await postJson(app, "/v1/embeddings", { model: MODEL, input: [] }), {
    status: 400,
    type: "invalid_request_error",
    code: null,
    param: "input",
  });
});

test("embedding token ids outside the vocabulary or input longer than the context are refused", async (t) => {
  assertError(await postJson(app, "/v1/embeddings", { model: MODEL, input: [1, engine.info.vocabSize] }), {
    status: 400,
    type: "invalid_request_error",
    code: null,
    param: "input",
  });
  const small = await startFakeServer({ contextSize: 32 });
  t.after(() => small.app.close());
  assertError(await postJson(small.app, "/v1/embeddings", { model: MODEL, input: "x".repeat(40) }), {
    status: 400,
    type: "invalid_request_error",
    code: "context_length_exceeded",
    param: "input",
  });
});

test("embeddings are not served when the app is built with embeddings disabled", async (t) => {
  const server = await startFakeServer({}, { isEmbeddingsEnabled: false });
  t.after(() => server.app.close());
  assertError(await postJson(server.app, "/v1/embeddings", { model: MODEL, input: "hello" }), {
    status: 404,
    type: "invalid_request_error",
    code: "unknown_url",
  });
});

test("tokenize adds BOS by default and answers the count and the context size", async () => {
  const body = okJson(await postJson(app, "/tokenize", { prompt: "hello" }));
  assert.deepEqual(body, { tokens: HELLO_TOKENS, count: 6, max_model_len: 256 });
  const withModel = okJson(await postJson(app, "/tokenize", { model: MODEL, content: "hello" }));
  assert.deepEqual(withModel, body, "content is the llama-server spelling of prompt");
});

test("tokenize leaves out BOS when add_special or add_special_tokens is false", async () => {
  const expected = { tokens: HELLO_TOKENS.slice(1), count: 5, max_model_len: 256 };
  assert.deepEqual(okJson(await postJson(app, "/tokenize", { prompt: "hello", add_special_tokens: false })), expected);
  assert.deepEqual(okJson(await postJson(app, "/tokenize", { content: "hello", add_special: false })), expected);
  assert.deepEqual(
    okJson(await postJson(app, "/tokenize", { content: "hello", add_special: true })).tokens,
    HELLO_TOKENS,
  );
});

test("detokenize answers the text under both spellings and round-trips tokenize", async () => {
  const text = "Round trip, with 123 & symbols!";
  for (const [field, flag] of [
    ["prompt", "add_special_tokens"],
    ["content", "add_special"],
  ] as const) {
    for (const addSpecial of [true, false]) {
      const tokenized = okJson(await postJson(app, "/tokenize", { [field]: text, [flag]: addSpecial }));
      assert.equal(tokenized.count, text.length + (addSpecial ? 1 : 0));
      const detokenized = okJson(await postJson(app, "/detokenize", { model: MODEL, tokens: tokenized.tokens }));
      assert.deepEqual(detokenized, { prompt: text, content: text });
    }
  }
});

test("tokenize without text, detokenize with an unknown token and an unknown model are refused", async () => {
  assertError(await postJson(app, "/tokenize", { add_special: true }), {
    status: 400,
    type: "invalid_request_error",
    code: null,
    param: "prompt",
  });
  assertError(await postJson(app, "/detokenize", { tokens: [1, 500] }), {
    status: 400,
    type: "invalid_request_error",
    code: null,
    param: "tokens",
  });
  assertError(await postJson(app, "/tokenize", { model: "other-model", prompt: "hello" }), {
    status: 404,
    type: "invalid_request_error",
    code: "model_not_found",
    param: "model",
  });
  assertError(await postJson(app, "/detokenize", { model: "other-model", tokens: [2] }), {
    status: 404,
    type: "invalid_request_error",
    code: "model_not_found",
    param: "model",
  });
});

test("no sequence is held after the embedding and tokenizer requests", () => {
  assert.equal(engine.numAcquiredSequences, 0);
});

test("a full embedding queue is a 429 with Retry-After, in OpenAI's envelope", async () => {
  const original = engine.embed.bind(engine);
  engine.embed = async () => {
    throw new EmbeddingQueueFullError("8192 embedding inputs are waiting; the limit is 8192");
  };
  try {
    const response = await postJson(app, "/v1/embeddings", { model: MODEL, input: "hello" });
    assertError(response, { status: 429, type: "rate_limit_error", code: "queue_full" });
    assert.equal(response.headers["retry-after"], "1");
  } finally {
    engine.embed = original;
  }
});
