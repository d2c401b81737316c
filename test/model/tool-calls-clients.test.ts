/**
 * Tool calling through the clients people use — `openai` (parse, stream, runTools), the Vercel AI SDK and LangChain
 * — against listening pagodas: stories260K, whose template has no call syntax (so only forced calls, in pagoda's
 * generic JSON), and a synthetic hermes-tools model, whose template teaches `<tool_call>` blocks (so `auto` too).
 * Every call's arguments are checked against the JSON schema the client put on the wire (recorded by a fetch
 * wrapper), and every response the clients read is checked against OpenAI's OpenAPI description.
 *
 * stories260K never closes the array of calls by itself; the tests that want one call and finish_reason
 * "tool_calls" send `parallel_tool_calls: false`, after which the grammar ends the output at the first call.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { tool as langChainTool } from "@langchain/core/tools";
import { ChatOpenAI } from "@langchain/openai";
import { generateText, streamText, tool } from "ai";
import OpenAI from "openai";
import { zodFunction } from "openai/helpers/zod";
import type { ChatCompletionChunk, ChatCompletionFunctionTool } from "openai/resources/chat/completions";
import { z } from "zod";
import { assertSatisfies } from "../helpers/client-schemas.ts";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import {
  HERMES_TOOLS_ID,
  readToolCallStream,
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
const QUESTION = "What is the weather in Paris this week, and what time is it there?";

type JsonRecord = Record<string, unknown>;

/** One HTTP exchange a client made: the JSON body it sent, and the response body (read from a clone). */
interface Exchange {
  readonly request: JsonRecord;
  readonly response: Promise<string>;
}

/**
 * A fetch that keeps every exchange, in order. `edit` may change a JSON request body before it is sent; what is
 * recorded is what was sent.
 */
function recordingFetch(edit: (body: JsonRecord) => void = () => {}): { fetch: typeof fetch; exchanges: Exchange[] } {
  const exchanges: Exchange[] = [];
  const recording: typeof fetch = async (input, init) => {
    let sent = init;
    let request: JsonRecord = {};
    if (typeof init?.body === "string") {
      request = JSON.parse(init.body) as JsonRecord;
      edit(request);
      sent = { ...init, body: JSON.stringify(request) };
    }
    const response = await fetch(input, sent);
    exchanges.push({ request, response: response.clone().text() });
    return response;
  };
  return { fetch: recording, exchanges };
}

/** The parameters schema of the tool named `name` in a recorded request body. */
function sentParameters(request: JsonRecord, name: string): unknown {
  const tools = request.tools as { function: { name: string; parameters: unknown } }[] | undefined;
  const found = tools?.find((candidate) => candidate.function.name === name);
  assert.ok(found !== undefined, `the request offered no tool named ${name}: ${JSON.stringify(request.tools)}`);
  return found.function.parameters;
}

function openAiClient(server: ModelServer, recording: typeof fetch): OpenAI {
  return new OpenAI({ baseURL: `${server.baseUrl}/v1`, apiKey: "unused", maxRetries: 0, fetch: recording });
}

// Bounded strings, so a story model (or random weights) finishes every argument.
const WEATHER_ARGS = z.object({ city: z.string().max(20), days: z.number().int().min(1).max(7) });
const TIME_ARGS = z.object({ zone: z.string().max(12) });

const WEATHER_TOOL: ChatCompletionFunctionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather forecast for a city",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", maxLength: 20 },
        days: { type: "integer", minimum: 1, maximum: 7 },
      },
      required: ["city", "days"],
      additionalProperties: false,
    },
    strict: true,
  },
};
const TIME_TOOL: ChatCompletionFunctionTool = {
  type: "function",
  function: {
    name: "get_time",
    description: "The local time in a time zone",
    parameters: {
      type: "object",
      properties: { zone: { type: "string", maxLength: 12 } },
      required: ["zone"],
      additionalProperties: false,
    },
    strict: true,
  },
};

test("openai's parse with strict zodFunction tools and a named tool_choice returns parsed_arguments zod accepts", async () => {
  const recorder = recordingFetch();
  const completion = await openAiClient(stories, recorder.fetch).chat.completions.parse({
    model: STORIES_ID,
    messages: [{ role: "user", content: QUESTION }],
    tools: [
      zodFunction({ name: "get_weather", parameters: WEATHER_ARGS }),
      zodFunction({ name: "get_time", parameters: TIME_ARGS }),
    ],
    tool_choice: { type: "function", function: { name: "get_time" } },
    parallel_tool_calls: false,
    max_tokens: MAX_TOKENS,
    temperature: 0,
  });
  const choice = completion.choices[0];
  assert.equal(choice?.finish_reason, "tool_calls");
  assert.equal(choice.message.content, null);
  const calls = choice.message.tool_calls ?? [];
  assert.equal(calls.length, 1);
  const call = calls[0]!;
  assert.equal(call.function.name, "get_time");
  assert.ok(TIME_ARGS.safeParse(call.function.parsed_arguments).success, `zod rejects ${call.function.arguments}`);

  const exchange = recorder.exchanges[0]!;
  assert.deepEqual(exchange.request.tool_choice, { type: "function", function: { name: "get_time" } });
  for (const sent of exchange.request.tools as { function: { strict?: boolean } }[]) {
    assert.equal(sent.function.strict, true);
  }
  assertSatisfies(sentParameters(exchange.request, "get_time"), call.function.parsed_arguments);
  assertMatchesSchema("CreateChatCompletionResponse", JSON.parse(await exchange.response));
});

test("openai's stream with tool_choice required: each call's header once, fragments that join to its arguments", async () => {
  const request = {
    model: STORIES_ID,
    messages: [{ role: "user" as const, content: QUESTION }],
    tools: [WEATHER_TOOL, TIME_TOOL],
    tool_choice: "required" as const,
    parallel_tool_calls: false,
    max_tokens: MAX_TOKENS,
    temperature: 0,
  };
  const stream = stories.client.chat.completions.stream({ ...request, stream: true });
  const chunks: ChatCompletionChunk[] = [];
  stream.on("chunk", (chunk) => chunks.push(chunk));
  const final = await stream.finalChatCompletion();

  for (const chunk of chunks) assertMatchesSchema("CreateChatCompletionStreamResponse", chunk);
  const streamed = readToolCallStream(chunks);
  assert.equal(streamed.finishReason, "tool_calls");
  assert.equal(streamed.content, "");
  const choice = final.choices[0];
  assert.equal(choice?.finish_reason, "tool_calls");
  assert.equal(choice.message.content, null);
  const finalCalls = choice.message.tool_calls ?? [];
  assert.equal(finalCalls.length, 1);
  // The SDK's assembly and ours agree: no fragment lost or repeated on the way.
  assert.deepEqual(
    finalCalls.map((call) => ({ id: call.id, name: call.function.name, arguments: call.function.arguments })),
    streamed.calls.map(({ id, name, arguments: args }) => ({ id, name, arguments: args })),
  );
  for (const call of finalCalls) {
    const tool = [WEATHER_TOOL, TIME_TOOL].find((candidate) => candidate.function.name === call.function.name);
    assert.ok(tool !== undefined, call.function.name);
    assertSatisfies(tool.function.parameters, JSON.parse(call.function.arguments));
  }
  // Greedy, the same request unstreamed makes the same call: the fragments are the whole arguments, in order.
  const whole = await stories.client.chat.completions.create(request);
  assert.deepEqual(
    whole.choices[0]?.message.tool_calls?.map((call) =>
      call.type === "function" ? [call.function.name, call.function.arguments] : [call.type],
    ),
    streamed.calls.map((call) => [call.name, call.arguments]),
  );
});

test("openai's runTools calls the function with schema-valid arguments, sends its result, and ends on an answer", async () => {
  // Random weights neither choose a call nor end a turn by themselves. A +100 logit_bias stands in for a trained
  // model's choices: on <tool_call> while the conversation holds no tool result (from there the grammar forces a
  // valid call, and with parallel_tool_calls false ends the output after it), then on the end-of-turn token, so the
  // answer ends by itself: the runner refuses any completion cut by max_tokens (LengthFinishReasonError).
  const recorder = recordingFetch((body) => {
    const messages = body.messages as { role: string }[];
    const hasResult = messages.some((message) => message.role === "tool");
    body.logit_bias = { [hasResult ? hermes.endOfTurnToken : hermes.toolCallToken]: 100 };
  });
  const invocations: unknown[] = [];
  const runner = openAiClient(hermes, recorder.fetch).chat.completions.runTools(
    {
      model: HERMES_TOOLS_ID,
      messages: [{ role: "user", content: QUESTION }],
      tools: [
        zodFunction({
          name: "get_weather",
          description: "The weather forecast for a city",
          parameters: WEATHER_ARGS,
          function: (args) => {
            invocations.push(args);
            return { forecast: "sunny", celsius: 21 };
          },
        }),
      ],
      parallel_tool_calls: false,
      max_tokens: MAX_TOKENS,
      temperature: 0,
    },
    { maxChatCompletions: 3 },
  );
  const answer = await runner.finalContent();

  assert.equal(invocations.length, 1);
  assert.ok(WEATHER_ARGS.safeParse(invocations[0]).success);
  assert.equal(typeof answer, "string");
  const messages = runner.messages;
  assert.deepEqual(
    messages.map((message) => message.role),
    ["user", "assistant", "tool", "assistant"],
  );
  const [, calling, result, final] = messages;
  assert.ok(calling?.role === "assistant" && result?.role === "tool" && final?.role === "assistant");
  assert.equal(calling.tool_calls?.length, 1);
  const call = calling.tool_calls?.[0];
  assert.ok(call?.type === "function");
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), invocations[0]);
  assert.equal(result.tool_call_id, call.id);
  assert.equal(result.content, '{"forecast":"sunny","celsius":21}');
  assert.equal(final.content, answer);
  assert.ok(final.tool_calls === undefined || final.tool_calls.length === 0);

  assert.equal(recorder.exchanges.length, 2);
  const [first, second] = recorder.exchanges.map((exchange) => exchange.request);
  // runTools asks for "auto": the model chose the call (steered), then chose to answer.
  assert.equal(first?.tool_choice, "auto");
  assert.deepEqual(first?.logit_bias, { [hermes.toolCallToken]: 100 });
  assertSatisfies(sentParameters(first ?? {}, "get_weather"), invocations[0]);
  const sentHistory = second?.messages as JsonRecord[];
  assert.deepEqual(
    sentHistory.map((message) => message.role),
    ["user", "assistant", "tool"],
  );
  const sentCalls = sentHistory[1]?.tool_calls as { id: string; function: { name: string } }[];
  assert.deepEqual(
    sentCalls.map((sent) => [sent.id, sent.function.name]),
    [[call.id, "get_weather"]],
  );
  assert.equal(sentHistory[2]?.tool_call_id, call.id);
  const finishReasons: unknown[] = [];
  for (const exchange of recorder.exchanges) {
    const body = JSON.parse(await exchange.response) as { choices: { finish_reason: string }[] };
    assertMatchesSchema("CreateChatCompletionResponse", body);
    finishReasons.push(body.choices[0]?.finish_reason);
  }
  assert.deepEqual(finishReasons, ["tool_calls", "stop"]);
});

test("auto on a model with a tool syntax, left alone, answers in content without calls", async () => {
  const completion = await hermes.client.chat.completions.create({
    model: HERMES_TOOLS_ID,
    messages: [{ role: "user", content: QUESTION }],
    tools: [WEATHER_TOOL, TIME_TOOL],
    tool_choice: "auto",
    max_tokens: 30,
    temperature: 0,
  });
  assertMatchesSchema("CreateChatCompletionResponse", completion);
  const choice = completion.choices[0];
  assert.ok(choice !== undefined);
  assert.notEqual(choice.finish_reason, "tool_calls");
  assert.equal(typeof choice.message.content, "string");
  assert.ok((choice.message.content ?? "").length > 0);
  assert.equal(choice.message.tool_calls, undefined);
});

test("auto on stories260K, whose template has no call syntax, is a BadRequestError naming tool_choice", async () => {
  // OpenAI's default with tools is auto, so leaving tool_choice out is refused the same way.
  for (const toolChoice of ["auto" as const, undefined]) {
    await assert.rejects(
      stories.client.chat.completions.create({
        model: STORIES_ID,
        messages: [{ role: "user", content: QUESTION }],
        tools: [WEATHER_TOOL],
        ...(toolChoice === undefined ? {} : { tool_choice: toolChoice }),
        max_tokens: 5,
      }),
      (error: unknown) => {
        assert.ok(error instanceof OpenAI.BadRequestError, String(error));
        assert.equal(error.status, 400);
        assert.equal(error.param, "tool_choice");
        assert.equal(error.code, "unsupported_parameter");
        return true;
      },
    );
  }
});

function aiSdkModel(recording: typeof fetch) {
  return createOpenAICompatible({
    name: "pagoda",
    baseURL: `${stories.baseUrl}/v1`,
    apiKey: "unused",
    fetch: recording,
  }).chatModel(STORIES_ID);
}

const AI_SDK_TOOLS = {
  get_weather: tool({ description: "The weather forecast for a city", inputSchema: WEATHER_ARGS }),
  get_time: tool({ description: "The local time in a time zone", inputSchema: TIME_ARGS }),
};

test("AI SDK generateText with toolChoice required returns tool calls whose input satisfies the schema", async () => {
  const recorder = recordingFetch();
  const result = await generateText({
    model: aiSdkModel(recorder.fetch),
    tools: AI_SDK_TOOLS,
    toolChoice: "required",
    prompt: QUESTION,
    temperature: 0,
    maxOutputTokens: MAX_TOKENS,
    maxRetries: 0,
    // Passed through to the request body: one call, then the grammar ends the output.
    providerOptions: { pagoda: { parallel_tool_calls: false } },
  });
  const request = recorder.exchanges[0]!.request;
  assert.equal(request.tool_choice, "required");
  assert.equal(request.parallel_tool_calls, false);
  assert.equal(result.finishReason, "tool-calls");
  assert.equal(result.toolCalls.length, 1);
  const call = result.toolCalls[0]!;
  assert.notEqual(call.invalid, true, JSON.stringify(call));
  const schema = call.toolName === "get_weather" ? WEATHER_ARGS : TIME_ARGS;
  assert.ok(schema.safeParse(call.input).success, JSON.stringify(call));
  assertSatisfies(sentParameters(request, call.toolName), call.input);
  assertMatchesSchema("CreateChatCompletionResponse", JSON.parse(await recorder.exchanges[0]!.response));
});

test("AI SDK streamText with toolChoice required streams the call's input in deltas that join to its input", async () => {
  const recorder = recordingFetch();
  const result = streamText({
    model: aiSdkModel(recorder.fetch),
    tools: AI_SDK_TOOLS,
    toolChoice: { type: "tool", toolName: "get_weather" },
    prompt: QUESTION,
    temperature: 0,
    maxOutputTokens: MAX_TOKENS,
    maxRetries: 0,
    providerOptions: { pagoda: { parallel_tool_calls: false } },
  });
  const starts: { id: string; toolName: string }[] = [];
  const deltas = new Map<string, string>();
  const calls: { toolCallId: string; toolName: string; input: unknown; invalid?: boolean }[] = [];
  let finishReason: string | undefined;
  for await (const part of result.fullStream) {
    if (part.type === "error") throw part.error;
    if (part.type === "tool-input-start") starts.push({ id: part.id, toolName: part.toolName });
    if (part.type === "tool-input-delta") deltas.set(part.id, (deltas.get(part.id) ?? "") + part.delta);
    if (part.type === "tool-call") calls.push(part);
    if (part.type === "finish") finishReason = part.finishReason;
  }
  const request = recorder.exchanges[0]!.request;
  assert.deepEqual(request.tool_choice, { type: "function", function: { name: "get_weather" } });
  assert.equal(finishReason, "tool-calls");
  assert.equal(starts.length, 1);
  assert.equal(calls.length, 1);
  const call = calls[0]!;
  assert.notEqual(call.invalid, true, JSON.stringify(call));
  assert.deepEqual(starts[0], { id: call.toolCallId, toolName: "get_weather" });
  assert.equal(call.toolName, "get_weather");
  assert.deepEqual(JSON.parse(deltas.get(call.toolCallId) ?? ""), call.input);
  assert.ok(WEATHER_ARGS.safeParse(call.input).success, JSON.stringify(call));
  assertSatisfies(sentParameters(request, "get_weather"), call.input);
});

function langChainModel(recording: typeof fetch): ChatOpenAI {
  return new ChatOpenAI({
    model: STORIES_ID,
    apiKey: "unused",
    configuration: { baseURL: `${stories.baseUrl}/v1`, fetch: recording },
    temperature: 0,
    maxTokens: MAX_TOKENS,
    maxRetries: 0,
  });
}

test("LangChain bindTools with a named tool_choice returns an AIMessage whose tool_calls satisfy the schema", async () => {
  const recorder = recordingFetch();
  const tools = [
    langChainTool(async () => "sunny", {
      name: "get_weather",
      description: "The weather forecast for a city",
      schema: WEATHER_ARGS,
    }),
    langChainTool(async () => "noon", { name: "get_time", description: "The local time in a zone", schema: TIME_ARGS }),
  ];
  const bound = langChainModel(recorder.fetch).bindTools(tools, {
    tool_choice: "get_weather",
    parallel_tool_calls: false,
  });
  const message = await bound.invoke(QUESTION);
  const request = recorder.exchanges[0]!.request;
  assert.deepEqual(request.tool_choice, { type: "function", function: { name: "get_weather" } });
  assert.equal((message.response_metadata as { finish_reason?: string }).finish_reason, "tool_calls");
  assert.deepEqual(message.invalid_tool_calls ?? [], []);
  assert.equal(message.tool_calls?.length, 1);
  const call = message.tool_calls?.[0];
  assert.equal(call?.name, "get_weather");
  assert.ok(WEATHER_ARGS.safeParse(call.args).success, JSON.stringify(call));
  assertSatisfies(sentParameters(request, "get_weather"), call.args);
  assertMatchesSchema("CreateChatCompletionResponse", JSON.parse(await recorder.exchanges[0]!.response));
});

test("LangChain withStructuredOutput using functionCalling forces its tool by name and parses a valid object", async () => {
  const recorder = recordingFetch();
  const schema = z.object({ name: z.string().max(20), age: z.number().int().min(1).max(120), pet: z.string().max(12) });
  const structured = langChainModel(recorder.fetch).withStructuredOutput(schema, {
    method: "functionCalling",
    name: "story_facts",
    includeRaw: true,
  });
  const { raw, parsed } = await structured.invoke("Tell me about the little girl and her dog.");
  const request = recorder.exchanges[0]!.request;
  assert.deepEqual(request.tool_choice, { type: "function", function: { name: "story_facts" } });
  assert.ok(schema.safeParse(parsed).success, JSON.stringify(parsed));
  assertSatisfies(sentParameters(request, "story_facts"), parsed);
  // LangChain leaves parallel_tool_calls unset; stories260K then repeats the call until max_tokens, and LangChain
  // takes the first. Every call pagoda returns is whole and named as forced.
  const rawCalls = (raw as { tool_calls?: { name: string; args: unknown }[] }).tool_calls ?? [];
  assert.ok(rawCalls.length >= 1);
  for (const call of rawCalls) {
    assert.equal(call.name, "story_facts");
    assertSatisfies(sentParameters(request, "story_facts"), call.args);
  }
  assertMatchesSchema("CreateChatCompletionResponse", JSON.parse(await recorder.exchanges[0]!.response));
});
