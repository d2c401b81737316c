/**
 * Constrained decoding through the clients people use — `openai`'s zod helpers, the Vercel AI SDK and LangChain —
 * against a listening pagoda serving stories260K, a model that only ever wrote children's stories. Every object a
 * client hands back is checked against the JSON schema that client put on the wire (recorded by a fetch wrapper),
 * and every constrained answer must have ended on its own: finish_reason "stop".
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { ChatOpenAI } from "@langchain/openai";
import { generateObject } from "ai";
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";
import { assertSatisfies } from "../helpers/client-schemas.ts";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";

let server: ModelServer;

before(async () => {
  server = await startModelServer(["--parallel", "4", "--ctx-size", "1024"]);
});

after(async () => {
  await server.close();
});

const MAX_TOKENS = 400;
const QUESTION = "Tell me about the little girl and her dog.";

type JsonRecord = Record<string, unknown>;

/** A fetch that keeps every JSON request body it sends, in order. */
function recordingFetch(): { fetch: typeof fetch; bodies: JsonRecord[] } {
  const bodies: JsonRecord[] = [];
  const recording: typeof fetch = async (input, init) => {
    if (typeof init?.body === "string") bodies.push(JSON.parse(init.body) as JsonRecord);
    return fetch(input, init);
  };
  return { fetch: recording, bodies };
}

function openAiClient(recording: typeof fetch): OpenAI {
  return new OpenAI({ baseURL: `${server.baseUrl}/v1`, apiKey: "unused", maxRetries: 0, fetch: recording });
}

const name = z.string().max(20);

/** The tokens of `{` and `}` (the tokenizer puts its own space token before them). */
async function braceTokens(): Promise<{ open: number; close: number }> {
  const response = await fetch(`${server.baseUrl}/tokenize`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "{}", add_special_tokens: false }),
  });
  const { tokens } = (await response.json()) as { tokens: number[] };
  assert.equal(tokens.length, 3, `"{}" should be a space token and one token per brace: ${JSON.stringify(tokens)}`);
  return { open: tokens[1]!, close: tokens[2]! };
}

/** One zod schema per structure the constraint engine must get right, each bounded so a story model finishes. */
const PARSE_CASES: { shape: string; schema: z.ZodObject }[] = [
  {
    shape: "nested objects",
    schema: z.object({
      hero: z.object({ name, home: z.object({ town: name, floor: z.number().int().min(0).max(9) }) }),
    }),
  },
  { shape: "an array of at most three items", schema: z.object({ friends: z.array(name).max(3) }) },
  { shape: "an enum", schema: z.object({ mood: z.enum(["happy", "sad", "sleepy"]) }) },
  {
    shape: "a nullable object",
    schema: z.object({ pet: z.object({ kind: name, legs: z.number().int().min(0).max(8) }).nullable() }),
  },
  { shape: "integer bounds", schema: z.object({ age: z.number().int().min(1).max(120) }) },
  { shape: "a string pattern", schema: z.object({ nickname: z.string().regex(/^[a-z]{3,8}$/) }) },
  {
    shape: "all of these at once",
    schema: z.object({
      name,
      age: z.number().int().min(1).max(120),
      mood: z.enum(["happy", "sad"]),
      home: z.object({ town: name }),
      friends: z.array(name).max(2),
      pet: z.object({ kind: name }).nullable(),
      nickname: z.string().regex(/^[a-z]{3,8}$/),
    }),
  },
];

function caseSchema(shape: string): z.ZodObject {
  const found = PARSE_CASES.find((candidate) => candidate.shape === shape);
  assert.ok(found !== undefined, shape);
  return found.schema;
}

for (const { shape, schema } of PARSE_CASES) {
  test(`openai's chat.completions.parse with zodResponseFormat returns an object satisfying ${shape}`, async () => {
    const recorder = recordingFetch();
    const format = zodResponseFormat(schema, "story_facts");
    const completion = await openAiClient(recorder.fetch).chat.completions.parse({
      model: STORIES_ID,
      messages: [{ role: "user", content: QUESTION }],
      response_format: format,
      max_tokens: MAX_TOKENS,
      temperature: 0,
    });
    const choice = completion.choices[0];
    assert.ok(choice !== undefined);
    assert.equal(choice.finish_reason, "stop");
    const parsed = choice.message.parsed;
    assert.ok(schema.safeParse(parsed).success, `zod rejects ${choice.message.content}`);
    assert.deepEqual(recorder.bodies[0]?.response_format, {
      type: "json_schema",
      json_schema: { name: "story_facts", strict: true, schema: format.json_schema.schema },
    });
    assertSatisfies(format.json_schema.schema, parsed);
  });
}

test("a nullable object takes its object branch when `{` is favoured by logit_bias, and still satisfies the schema", async () => {
  // Greedy, the model answers null (the case above); a nudge towards `{` makes the grammar's other branch win.
  const schema = caseSchema("a nullable object");
  const format = zodResponseFormat(schema, "story_facts");
  const { open } = await braceTokens();
  const completion = await server.client.chat.completions.parse({
    model: STORIES_ID,
    messages: [{ role: "user", content: QUESTION }],
    response_format: format,
    max_tokens: MAX_TOKENS,
    temperature: 0,
    logit_bias: { [open]: 10 },
  });
  const choice = completion.choices[0];
  assert.equal(choice?.finish_reason, "stop");
  const parsed = choice.message.parsed as { pet: unknown } | null;
  assert.ok(parsed !== null && typeof parsed.pet === "object" && parsed.pet !== null, choice.message.content ?? "");
  assert.ok(schema.safeParse(parsed).success);
  assertSatisfies(format.json_schema.schema, parsed);
});

test("zod string formats, which zodResponseFormat sends as a format with a pattern beside it, are honoured", async () => {
  // zod 4 emits every string format (date, email, uuid, datetime) with a pattern beside it; pagoda enforces both at
  // once, so the output satisfies ajv-formats' format and zod's own pattern.
  const schema = z.object({ birthday: z.iso.date(), id: z.uuid(), seen: z.iso.datetime() });
  const format = zodResponseFormat(schema, "story_facts");
  const birthday = (format.json_schema.schema as { properties: { birthday: JsonRecord } }).properties.birthday;
  assert.equal(birthday.format, "date");
  assert.equal(typeof birthday.pattern, "string");
  const completion = await server.client.chat.completions.parse({
    model: STORIES_ID,
    messages: [{ role: "user", content: QUESTION }],
    response_format: format,
    max_tokens: MAX_TOKENS,
    temperature: 0,
  });
  const choice = completion.choices[0];
  assert.equal(choice?.finish_reason, "stop");
  assert.ok(schema.safeParse(choice?.message.parsed).success, `zod rejects ${choice?.message.content}`);
  assertSatisfies(format.json_schema.schema, choice?.message.parsed);
});

test("a streamed json_schema chat completion's deltas concatenate to the non-streamed JSON, which satisfies the schema", async () => {
  const schema = caseSchema("all of these at once");
  const format = zodResponseFormat(schema, "story_facts");
  const request = {
    model: STORIES_ID,
    messages: [{ role: "user" as const, content: QUESTION }],
    response_format: format,
    max_tokens: MAX_TOKENS,
    temperature: 0,
  };
  let streamed = "";
  let finishReason: string | null = null;
  for await (const chunk of await server.client.chat.completions.create({ ...request, stream: true })) {
    streamed += chunk.choices[0]?.delta.content ?? "";
    finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
  }
  assert.equal(finishReason, "stop");
  assertSatisfies(format.json_schema.schema, JSON.parse(streamed));
  const whole = await server.client.chat.completions.create(request);
  assert.equal(streamed, whole.choices[0]?.message.content);
});

test("each of n = 3 sampled choices satisfies the schema and ends with stop", async () => {
  const schema = caseSchema("all of these at once");
  const format = zodResponseFormat(schema, "story_facts");
  const completion = await server.client.chat.completions.create({
    model: STORIES_ID,
    messages: [{ role: "user", content: QUESTION }],
    response_format: format,
    max_tokens: MAX_TOKENS,
    temperature: 1,
    seed: 42,
    n: 3,
  });
  assert.deepEqual(
    completion.choices.map((choice) => choice.index),
    [0, 1, 2],
  );
  for (const choice of completion.choices) {
    assert.equal(choice.finish_reason, "stop", `choice ${choice.index}`);
    const parsed: unknown = JSON.parse(choice.message.content ?? "");
    assertSatisfies(format.json_schema.schema, parsed);
    assert.ok(schema.safeParse(parsed).success, `zod rejects choice ${choice.index}: ${choice.message.content}`);
  }
});

test("AI SDK generateObject with structured outputs sends a json_schema and returns an object satisfying it", async () => {
  const recorder = recordingFetch();
  const provider = createOpenAICompatible({
    name: "pagoda",
    baseURL: `${server.baseUrl}/v1`,
    apiKey: "unused",
    supportsStructuredOutputs: true,
    fetch: recorder.fetch,
  });
  const schema = z.object({
    name,
    age: z.number().int().min(1).max(120),
    mood: z.enum(["happy", "sad"]),
    friends: z.array(name).max(2),
  });
  const result = await generateObject({
    model: provider.chatModel(STORIES_ID),
    schema,
    schemaName: "story_facts",
    prompt: QUESTION,
    temperature: 0,
    maxOutputTokens: MAX_TOKENS,
    maxRetries: 0,
  });
  assert.equal(result.finishReason, "stop");
  assert.ok(schema.safeParse(result.object).success);
  const sent = recorder.bodies[0]?.response_format as { type: string; json_schema: JsonRecord } | undefined;
  assert.equal(sent?.type, "json_schema");
  assert.equal(sent.json_schema.name, "story_facts");
  assert.equal(sent.json_schema.strict, true);
  assertSatisfies(sent.json_schema.schema, result.object);
});

test("AI SDK generateObject without structured outputs sends json_object and gets back a JSON object it parses", async () => {
  const recorder = recordingFetch();
  const provider = createOpenAICompatible({
    name: "pagoda",
    baseURL: `${server.baseUrl}/v1`,
    apiKey: "unused",
    fetch: recorder.fetch,
  });
  // json_object mode promises any JSON object, not this schema's; a loose empty object is all any object satisfies.
  const schema = z.looseObject({});
  // Left alone, a story model writes a story into the first JSON string and never closes it. Favouring `}` (passed
  // through as a provider option) lets the grammar end the object as soon as it may.
  const { close: closeBrace } = await braceTokens();
  const result = await generateObject({
    model: provider.chatModel(STORIES_ID),
    schema,
    prompt: `${QUESTION} Answer in JSON.`,
    temperature: 0,
    maxOutputTokens: MAX_TOKENS,
    maxRetries: 0,
    providerOptions: { pagoda: { logit_bias: { [closeBrace]: 100 } } },
  });
  assert.deepEqual(recorder.bodies[0]?.response_format, { type: "json_object" });
  assert.deepEqual(recorder.bodies[0]?.logit_bias, { [closeBrace]: 100 });
  assert.equal(result.finishReason, "stop");
  assert.equal(typeof result.object, "object");
  assert.ok(result.object !== null && !Array.isArray(result.object));
});

test("LangChain withStructuredOutput using jsonSchema sends a json_schema and parses an object satisfying it", async () => {
  const recorder = recordingFetch();
  const model = new ChatOpenAI({
    model: STORIES_ID,
    apiKey: "unused",
    configuration: { baseURL: `${server.baseUrl}/v1`, fetch: recorder.fetch },
    temperature: 0,
    maxTokens: MAX_TOKENS,
    maxRetries: 0,
  });
  const schema = z.object({
    name,
    age: z.number().int().min(1).max(120),
    pet: z.object({ kind: name }).nullable(),
  });
  const structured = model.withStructuredOutput(schema, {
    method: "jsonSchema",
    name: "story_facts",
    includeRaw: true,
  });
  const { raw, parsed } = await structured.invoke(QUESTION);
  assert.equal((raw.response_metadata as { finish_reason?: string }).finish_reason, "stop");
  assert.ok(schema.safeParse(parsed).success);
  const sent = recorder.bodies[0]?.response_format as { type: string; json_schema: JsonRecord } | undefined;
  assert.equal(sent?.type, "json_schema");
  assert.equal(sent.json_schema.name, "story_facts");
  assertSatisfies(sent.json_schema.schema, parsed);
});
