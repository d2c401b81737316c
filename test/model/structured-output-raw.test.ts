/**
 * Constrained decoding over plain HTTP, in the spellings no official client sends: llama-server's `json_schema` and
 * `grammar`, vLLM's `structured_outputs`, `logit_bias`, a request without `model`, and the 400s for constraints
 * pagoda cannot enforce — against a listening pagoda serving stories260K.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ajv } from "ajv";
import formats from "ajv-formats";
import type { TokenId } from "../../src/engine/engine.ts";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";

let server: ModelServer;

before(async () => {
  server = await startModelServer(["--parallel", "4", "--ctx-size", "1024"]);
});

after(async () => {
  await server.close();
});

const PROMPT = "Once upon a time";
/** stories260K's end-of-sequence token (llama's `</s>`). */
const EOS_TOKEN = 2;

interface CompletionChoice {
  text: string;
  finish_reason: string;
  logprobs: { tokens: string[] } | null;
}
interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
}

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${server.baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** A greedy /v1/completions request that must succeed; returns its one choice. */
async function complete(fields: Record<string, unknown>): Promise<CompletionChoice> {
  const { status, json } = await post("/v1/completions", {
    model: STORIES_ID,
    prompt: PROMPT,
    max_tokens: 200,
    temperature: 0,
    ...fields,
  });
  assert.equal(status, 200, JSON.stringify(json));
  const choices = json.choices as CompletionChoice[];
  assert.equal(choices.length, 1);
  return choices[0]!;
}

/** A request that must be refused with a 400; returns the error. */
async function refused(path: string, body: Record<string, unknown>): Promise<ErrorEnvelope["error"]> {
  const { status, json } = await post(path, body);
  assert.equal(status, 400, JSON.stringify(json));
  return (json as unknown as ErrorEnvelope).error;
}

const ajv = new Ajv({ strict: false, allErrors: true });
// ajv-formats is CommonJS: its default import is either the plugin or its exports object; both carry `default`.
formats.default(ajv);

const STORY_SCHEMA = {
  type: "object",
  properties: {
    title: { type: "string", maxLength: 16 },
    words: { type: "integer", minimum: 1, maximum: 99 },
    happy: { type: "boolean" },
  },
  required: ["title", "words", "happy"],
  additionalProperties: false,
};
const validateStory = ajv.compile(STORY_SCHEMA);

function assertStory(text: string): void {
  const value: unknown = JSON.parse(text);
  assert.ok(validateStory(value), `${text} does not satisfy the schema: ${ajv.errorsText(validateStory.errors)}`);
}

test("a completion with llama-server's json_schema returns JSON that satisfies the schema", async () => {
  const choice = await complete({ json_schema: STORY_SCHEMA });
  assert.equal(choice.finish_reason, "stop");
  assertStory(choice.text);
});

test("string formats given without a pattern produce strings ajv-formats accepts", async () => {
  const schema = {
    type: "object",
    properties: {
      day: { type: "string", format: "date" },
      id: { type: "string", format: "uuid" },
      at: { type: "string", format: "date-time" },
    },
    required: ["day", "id", "at"],
    additionalProperties: false,
  };
  const choice = await complete({ json_schema: schema });
  assert.equal(choice.finish_reason, "stop");
  const validate = ajv.compile(schema);
  assert.ok(validate(JSON.parse(choice.text)), `${choice.text}: ${ajv.errorsText(validate.errors)}`);
});

test("a completion with a GBNF grammar returns one of the grammar's sentences", async () => {
  const choice = await complete({ grammar: 'root ::= "yes" | "no"' });
  assert.equal(choice.finish_reason, "stop");
  assert.ok(["yes", "no"].includes(choice.text), choice.text);
});

test("a completion with structured_outputs.choice returns exactly one of the choices", async () => {
  const choices = ["cat", "dog", "little bird"];
  const choice = await complete({ structured_outputs: { choice: choices } });
  assert.equal(choice.finish_reason, "stop");
  assert.ok(choices.includes(choice.text), choice.text);
});

test("a completion with structured_outputs.regex returns text the whole regex matches", async () => {
  const choice = await complete({ structured_outputs: { regex: "[a-z]{3,8}" } });
  assert.equal(choice.finish_reason, "stop");
  assert.match(choice.text, /^[a-z]{3,8}$/);
});

test("a completion with response_format json_object and `}` favoured by logit_bias returns the JSON object {}", async () => {
  // Left alone, a story model fills a JSON string with a story and never closes it; favouring `}` shows the grammar
  // holds the bias back until `{` is written, and ends the output right after the object is complete.
  const { json: tokenized } = await post("/tokenize", { prompt: "{}", add_special_tokens: false });
  const closeBrace = (tokenized.tokens as number[]).at(-1)!;
  const { json: detokenized } = await post("/detokenize", { tokens: [closeBrace] });
  assert.equal(detokenized.content, "}");
  const choice = await complete({ response_format: { type: "json_object" }, logit_bias: { [closeBrace]: 100 } });
  assert.equal(choice.finish_reason, "stop");
  assert.deepEqual(JSON.parse(choice.text), {});
});

test("a constrained chat completion without a model field is served by the one model", async () => {
  const { status, json } = await post("/v1/chat/completions", {
    messages: [{ role: "user", content: "Tell me a story." }],
    response_format: { type: "json_schema", json_schema: { name: "story", schema: STORY_SCHEMA, strict: true } },
    max_tokens: 200,
    temperature: 0,
  });
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.model, STORIES_ID);
  const choice = (json.choices as { message: { content: string }; finish_reason: string }[])[0]!;
  assert.equal(choice.finish_reason, "stop");
  assertStory(choice.message.content);
});

test("a token banned with logit_bias -100 never appears in a greedy completion that otherwise contains it", async () => {
  // Without a leading space the tokenizer adds its own: "little" is the one token " little".
  const { json: tokenized } = await post("/tokenize", { prompt: "little", add_special_tokens: false });
  const tokens = tokenized.tokens as number[];
  assert.equal(tokens.length, 1, `"little" should be one token: ${JSON.stringify(tokens)}`);
  const banned = tokens[0]!;
  const plain = await complete({ max_tokens: 32, logprobs: 0 });
  assert.ok(plain.logprobs?.tokens.includes(" little"), JSON.stringify(plain.logprobs?.tokens));
  const biased = await complete({ max_tokens: 32, logprobs: 0, logit_bias: { [banned]: -100 } });
  assert.ok(biased.logprobs !== null);
  assert.equal(biased.logprobs.tokens.length, 32);
  assert.ok(!biased.logprobs.tokens.includes(" little"), JSON.stringify(biased.logprobs.tokens));
  assert.notEqual(biased.text, plain.text);
});

test("forcing end-of-generation with logit_bias under a json_schema still ends only on complete, valid JSON", async () => {
  assert.ok(server.runtime.engine.isEndOfGeneration(EOS_TOKEN as TokenId), "token 2 ends generation");
  const { json: detokenized } = await post("/detokenize", { tokens: [EOS_TOKEN] });
  assert.equal(detokenized.content, "", "the end token has no text");
  const choice = await complete({ json_schema: STORY_SCHEMA, logit_bias: { [EOS_TOKEN]: 100 } });
  assert.equal(choice.finish_reason, "stop");
  assertStory(choice.text);
  // Held back until the object is complete, where greedy decoding ends anyway, the bias changes nothing.
  assert.equal(choice.text, (await complete({ json_schema: STORY_SCHEMA })).text);
  const health = await fetch(`${server.baseUrl}/health`);
  assert.equal(health.status, 200);
  assert.equal((await complete({ max_tokens: 8 })).finish_reason, "length");
});

test("a schema keyword pagoda cannot enforce is a 400 naming the keyword, its field and its place", async () => {
  const onCompletions = await refused("/v1/completions", {
    model: STORIES_ID,
    prompt: PROMPT,
    json_schema: { type: "string", not: { const: "a" } },
  });
  assert.equal(onCompletions.code, "invalid_constraint");
  assert.equal(onCompletions.param, "json_schema");
  assert.match(onCompletions.message, /\bnot\b/);
  const nested = await refused("/v1/chat/completions", {
    model: STORIES_ID,
    messages: [{ role: "user", content: "Hi" }],
    response_format: {
      type: "json_schema",
      json_schema: {
        name: "x",
        schema: { type: "object", properties: { pet: { type: "string", not: { const: "a" } } } },
      },
    },
  });
  assert.equal(nested.code, "invalid_constraint");
  assert.equal(nested.param, "response_format.json_schema.schema");
  assert.match(nested.message, /\bnot\b/);
  assert.match(nested.message, /\/properties\/pet/, "the message carries the keyword's JSON pointer");
});

test("malformed GBNF is a 400 on the grammar field", async () => {
  const error = await refused("/v1/completions", { model: STORIES_ID, prompt: PROMPT, grammar: 'root ::= "yes' });
  assert.equal(error.code, "invalid_constraint");
  assert.equal(error.param, "grammar");
  const undefinedRule = await refused("/v1/completions", { model: STORIES_ID, prompt: PROMPT, grammar: "root ::= a" });
  assert.equal(undefinedRule.param, "grammar");
});

test("two constraints in one request are a 400", async () => {
  const error = await refused("/v1/completions", {
    model: STORIES_ID,
    prompt: PROMPT,
    grammar: 'root ::= "yes"',
    json_schema: STORY_SCHEMA,
  });
  assert.match(error.message, /json_schema/);
  assert.match(error.message, /grammar/);
  const chat = await refused("/v1/chat/completions", {
    model: STORIES_ID,
    messages: [{ role: "user", content: "Hi" }],
    response_format: { type: "json_object" },
    structured_outputs: { choice: ["a", "b"] },
  });
  assert.match(chat.message, /response_format/);
  assert.match(chat.message, /structured_outputs\.choice/);
});

test("stop or ignore_eos together with a constraint is a 400 naming that field", async () => {
  const base = { model: STORIES_ID, prompt: PROMPT, json_schema: STORY_SCHEMA };
  assert.equal((await refused("/v1/completions", { ...base, stop: ["}"] })).param, "stop");
  assert.equal((await refused("/v1/completions", { ...base, ignore_eos: true })).param, "ignore_eos");
  const chat = await refused("/v1/chat/completions", {
    model: STORIES_ID,
    messages: [{ role: "user", content: "Hi" }],
    structured_outputs: { regex: "[a-z]+" },
    stop: "x",
  });
  assert.equal(chat.param, "stop");
});

test("after every refusal the server is healthy and serves a normal request", async () => {
  await refused("/v1/completions", { model: STORIES_ID, prompt: PROMPT, json_schema: { not: {} } });
  await refused("/v1/completions", { model: STORIES_ID, prompt: PROMPT, grammar: "root ::= (" });
  const health = await fetch(`${server.baseUrl}/health`);
  assert.equal(health.status, 200);
  const choice = await complete({ max_tokens: 24 });
  assert.equal(choice.finish_reason, "length");
  assert.match(choice.text, /^, there was a little/);
});
