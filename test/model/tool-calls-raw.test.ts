/**
 * Tool calls on the wire, read without a client: raw JSON bodies and SSE events from stories260K (generic call
 * syntax, forced by grammar) and a synthetic hermes-tools model (`<tool_call>` blocks, so `auto` too). Every body
 * and chunk is checked against OpenAI's OpenAPI description, and every call's arguments against its tool's schema.
 * What matters most here is that nothing the model wrote is lost, streamed or not, also when max_tokens cuts it.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ajv } from "ajv";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import {
  HERMES_TOOLS_ID,
  readToolCallStream,
  type StreamedChoice,
  sseChunks,
  startHermesToolServer,
  type ToolModelServer,
} from "../helpers/tool-calls.ts";

let stories: ModelServer;
let hermes: ToolModelServer;

before(async () => {
  stories = await startModelServer(["--parallel", "4", "--ctx-size", "1024"]);
  hermes = await startHermesToolServer(["--parallel", "4", "--ctx-size", "1024"]);
});

after(async () => {
  await Promise.all([stories?.close(), hermes?.close()]);
});

const MAX_TOKENS = 200;
const QUESTION = [{ role: "user", content: "What time is it in Paris, and what is the weather there?" }];

const TIME_PARAMETERS = {
  type: "object",
  properties: { zone: { type: "string", maxLength: 12 } },
  required: ["zone"],
  additionalProperties: false,
};
const WEATHER_PARAMETERS = {
  type: "object",
  properties: { city: { type: "string", maxLength: 20 }, days: { type: "integer", minimum: 1, maximum: 7 } },
  required: ["city", "days"],
  additionalProperties: false,
};
const TOOLS = [
  {
    type: "function",
    function: { name: "get_time", description: "The local time in a zone", parameters: TIME_PARAMETERS },
  },
  {
    type: "function",
    function: { name: "get_weather", description: "The weather forecast for a city", parameters: WEATHER_PARAMETERS },
  },
];

const ajv = new Ajv({ strict: false, allErrors: true });
const validators = new Map(TOOLS.map((tool) => [tool.function.name, ajv.compile(tool.function.parameters)]));

function assertValidArguments(name: string, text: string): void {
  const validate = validators.get(name);
  assert.ok(validate !== undefined, `no tool named ${name}`);
  const value: unknown = JSON.parse(text);
  assert.ok(validate(value), `${name}(${text}) does not satisfy its schema: ${ajv.errorsText(validate.errors)}`);
}

interface ToolCallJson {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

interface ChatJson {
  choices: {
    message: { content: string | null; tool_calls?: ToolCallJson[] };
    finish_reason: string;
    logprobs: { content: { token: string }[] } | null;
  }[];
  usage: { prompt_tokens: number; completion_tokens: number };
}

async function post(server: ModelServer, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${server.baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** A non-streamed chat completion, checked against OpenAI's schema. */
async function complete(server: ModelServer, body: Record<string, unknown>): Promise<ChatJson> {
  const response = await post(server, body);
  const json = (await response.json()) as ChatJson;
  assert.equal(response.status, 200, JSON.stringify(json));
  assertMatchesSchema("CreateChatCompletionResponse", json);
  return json;
}

/** A streamed chat completion, each chunk checked against OpenAI's schema, read by `readToolCallStream`. */
async function stream(server: ModelServer, body: Record<string, unknown>): Promise<StreamedChoice> {
  const response = await post(server, { ...body, stream: true });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
  const chunks = sseChunks(text);
  for (const chunk of chunks) assertMatchesSchema("CreateChatCompletionStreamResponse", chunk);
  return readToolCallStream(chunks);
}

const callsOf = (json: ChatJson) =>
  (json.choices[0]?.message.tool_calls ?? []).map((call) => ({
    name: call.function.name,
    arguments: call.function.arguments,
  }));

test("a required call cut by max_tokens 5 finishes with length and keeps its text as content, streamed or not", async () => {
  const request = { model: STORIES_ID, messages: QUESTION, tools: TOOLS, tool_choice: "required", max_tokens: 5 };
  const whole = await complete(stories, { ...request, temperature: 0 });
  const choice = whole.choices[0];
  assert.equal(choice?.finish_reason, "length");
  assert.equal(choice.message.tool_calls, undefined);
  // The start of the generic call syntax, which the grammar forces.
  assert.match(choice.message.content ?? "", /^\{"/);
  const streamed = await stream(stories, { ...request, temperature: 0 });
  assert.deepEqual(streamed, { content: choice.message.content, calls: [], finishReason: "length" });
});

test("streamed parallel calls: one header per call, fragments that join to arguments matching the unstreamed ones", async () => {
  // stories260K never closes the array of calls, so max_tokens ends the output, inside a call or between two.
  const request = {
    model: STORIES_ID,
    messages: QUESTION,
    tools: TOOLS,
    tool_choice: "required",
    max_tokens: MAX_TOKENS,
  };
  const streamed = await stream(stories, { ...request, temperature: 0 });
  assert.equal(streamed.finishReason, "length");
  assert.equal(streamed.content, "");
  const whole = await complete(stories, { ...request, temperature: 0 });
  const unstreamed = callsOf(whole);
  assert.ok(unstreamed.length >= 2, JSON.stringify(unstreamed));
  // The calls the unstreamed message holds are the stream's, in order, each with the same arguments.
  assert.deepEqual(
    streamed.calls.slice(0, unstreamed.length).map(({ name, arguments: args }) => ({ name, arguments: args })),
    unstreamed,
  );
  // max_tokens cut the last call (returned with the arguments written so far); every call before it is whole.
  for (const call of unstreamed.slice(0, -1)) assertValidArguments(call.name, call.arguments);
  const ids = [...streamed.calls, ...(whole.choices[0]?.message.tool_calls ?? [])].map((call) => call.id);
  assert.equal(new Set(ids).size, ids.length, "every call id is new");
});

test("a call cut by max_tokens after a complete one is not dropped from the unstreamed message", async () => {
  // Where to cut: just inside the second call's arguments, found from the tokens of an uncut run (greedy, so the
  // cut run writes the same tokens up to its end).
  const request = { model: STORIES_ID, messages: QUESTION, tools: [TOOLS[0]], tool_choice: "required", temperature: 0 };
  const uncut = await complete(stories, { ...request, max_tokens: MAX_TOKENS, logprobs: true });
  const tokens = uncut.choices[0]?.logprobs?.content.map((entry) => entry.token) ?? [];
  let text = "";
  const numTokens =
    tokens.findIndex((token) => {
      text += token;
      return text.split('"arguments"').length === 3;
    }) + 4;
  assert.ok(numTokens > 4, `the uncut run should start a second call: ${text}`);

  const streamed = await stream(stories, { ...request, max_tokens: numTokens });
  const whole = await complete(stories, { ...request, max_tokens: numTokens });
  const message = whole.choices[0]?.message;
  assert.equal(whole.choices[0]?.finish_reason, "length");
  assert.equal(streamed.finishReason, "length");
  assert.equal(streamed.calls.length, 2, "the stream announces the cut second call");
  assertValidArguments("get_time", streamed.calls[0]?.arguments ?? "");
  // The cut call must reach the client somehow: as a call (as the stream sent it, and as OpenAI returns a call cut by
  // max_tokens, its arguments unfinished), or its text as content.
  const cutCallText = `"name": "get_time", "arguments":`;
  const isKept = (message?.tool_calls?.length ?? 0) === 2 || (message?.content ?? "").includes(cutCallText);
  assert.ok(
    isKept,
    `the unstreamed message lost the cut call: ${JSON.stringify(message)}; the stream has ${JSON.stringify(streamed.calls)}`,
  );
  assert.deepEqual(
    callsOf(whole),
    streamed.calls.map(({ name, arguments: args }) => ({ name, arguments: args })),
  );
});

test("auto on the hermes model, steered into <tool_call>, streams one call and finishes with tool_calls", async () => {
  // Random weights never choose a call by themselves: the +100 logit_bias on <tool_call> stands in for a trained
  // model's choice. From there the grammar forces a valid call; with parallel_tool_calls false it then ends the output.
  const request = {
    model: HERMES_TOOLS_ID,
    messages: QUESTION,
    tools: TOOLS,
    tool_choice: "auto",
    parallel_tool_calls: false,
    logit_bias: { [hermes.toolCallToken]: 100 },
    max_tokens: MAX_TOKENS,
    temperature: 0,
  };
  const streamed = await stream(hermes, request);
  assert.equal(streamed.finishReason, "tool_calls");
  assert.equal(streamed.content, "", "the <tool_call> markup is not content");
  assert.equal(streamed.calls.length, 1);
  const call = streamed.calls[0]!;
  assertValidArguments(call.name, call.arguments);

  const whole = await complete(hermes, request);
  const choice = whole.choices[0];
  assert.equal(choice?.finish_reason, "tool_calls");
  assert.equal(choice.message.content, null);
  assert.deepEqual(callsOf(whole), [{ name: call.name, arguments: call.arguments }]);
});

test("a tool result in the history reaches the model, and the next forced call is valid (generic syntax)", async () => {
  const first = await complete(stories, {
    model: STORIES_ID,
    messages: QUESTION,
    tools: TOOLS,
    tool_choice: { type: "function", function: { name: "get_time" } },
    parallel_tool_calls: false,
    max_tokens: MAX_TOKENS,
    temperature: 0,
  });
  const calling = first.choices[0]?.message;
  assert.equal(first.choices[0]?.finish_reason, "tool_calls");
  const call = calling?.tool_calls?.[0];
  assert.ok(call !== undefined && calling?.tool_calls?.length === 1);
  const history = [
    ...QUESTION,
    { role: "assistant", content: null, tool_calls: [call] },
    { role: "tool", tool_call_id: call.id, content: "noon" },
  ];
  const request = {
    model: STORIES_ID,
    messages: history,
    tools: TOOLS,
    tool_choice: { type: "function", function: { name: "get_weather" } },
    parallel_tool_calls: false,
    max_tokens: MAX_TOKENS,
    temperature: 0,
  };
  const second = await complete(stories, request);
  assert.equal(second.choices[0]?.finish_reason, "tool_calls");
  const [next] = callsOf(second);
  assert.equal(next?.name, "get_weather");
  assertValidArguments("get_weather", next.arguments);
  // The call and its result are part of the prompt: without them it is shorter.
  const withResult = await complete(stories, { ...request, max_tokens: 1 });
  const without = await complete(stories, { ...request, messages: QUESTION, max_tokens: 1 });
  assert.ok(withResult.usage.prompt_tokens > without.usage.prompt_tokens);
});

test("the hermes template's end of turn is not turned into a stop string of bare whitespace", () => {
  // node-llama-cpp's Jinja wrapper gives this template the stop trigger `<|im_end|>\n` as special-token text. It is
  // three tokens, so it is kept as a stop string: detokenized without special tokens it is " \n", which would end
  // any answer that writes a space before a line break. The end-of-turn token already ends the output as EOG.
  const { stopStrings } = hermes.runtime.engine.renderChat([{ role: "user", content: "Hello" }]);
  for (const stop of stopStrings) {
    assert.ok(stop.trim().length > 0, `stop strings ${JSON.stringify(stopStrings)} include bare whitespace`);
  }
});
