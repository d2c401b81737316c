/**
 * Tool requests through the HTTP layer on the fake engine: what reaches the template and the engine (tools, the
 * grammar or its triggers), and every refusal as a 400 naming the field. Real calls, parsed and streamed, are
 * tested on real models (test/model/tool-calls*.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { FakeServer } from "../helpers/fake-server.ts";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, okJson, postJson } from "./support.ts";

const WEATHER = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const HI = [{ role: "user", content: "Weather in Paris?" }];

let generic: FakeServer;
let hermes: FakeServer;

before(async () => {
  generic = await startFakeServer({ contextSize: 2048 });
  hermes = await startFakeServer({ toolSyntax: "hermes" });
});

after(async () => {
  await generic.app.close();
  await hermes.app.close();
});

function chat(server: FakeServer, fields: Record<string, unknown>) {
  return postJson(server.app, "/v1/chat/completions", { model: FAKE_MODEL_ID, messages: HI, max_tokens: 2, ...fields });
}

function badRequest(code: string | null, param: string) {
  return { status: 400, type: "invalid_request_error", code, param };
}

test("auto on a template without a tool syntax is a 400 naming tool_choice; required and named work", async () => {
  assertError(await chat(generic, { tools: [WEATHER] }), badRequest("unsupported_parameter", "tool_choice"));
  assertError(
    await chat(generic, { tools: [WEATHER], tool_choice: "auto" }),
    badRequest("unsupported_parameter", "tool_choice"),
  );
  for (const tool_choice of ["required", { type: "function", function: { name: "get_weather" } }]) {
    const before = generic.engine.acquiredSamplings.length;
    okJson(await chat(generic, { tools: [WEATHER], tool_choice }));
    const sampling = generic.engine.acquiredSamplings[before];
    assert.match(sampling?.grammar?.gbnf ?? "", /tool_calls/);
    assert.equal(sampling?.grammarTriggers ?? null, null);
    // The generic syntax is taught by a system message, not by the template.
    assert.deepEqual(generic.engine.renderedTools.at(-1), []);
    const system = generic.engine.renderedMessages.at(-1)?.[0];
    assert.equal(system?.role, "system");
    assert.match(system?.content ?? "", /"get_weather"/);
  }
});

test("auto on a template with a tool syntax offers the tools to it and starts the grammar at the trigger", async () => {
  const before = hermes.engine.acquiredSamplings.length;
  okJson(await chat(hermes, { tools: [WEATHER] }));
  const sampling = hermes.engine.acquiredSamplings[before];
  assert.equal(sampling?.grammar ?? null, null);
  assert.deepEqual(
    sampling?.grammarTriggers?.map((trigger) => trigger.text),
    ["<tool_call>"],
  );
  assert.deepEqual(hermes.engine.renderedTools.at(-1), [
    { name: "get_weather", description: "The weather in a city", parameters: WEATHER.function.parameters },
  ]);
});

test("tool_choice none, or no tools, is an ordinary request", async () => {
  for (const fields of [{ tools: [WEATHER], tool_choice: "none" }, { tools: [] }, { tool_choice: "auto" }]) {
    const before = hermes.engine.acquiredSamplings.length;
    const body = okJson(await chat(hermes, fields));
    assert.equal(body.choices[0].message.tool_calls, undefined);
    assert.equal(hermes.engine.acquiredSamplings[before]?.grammarTriggers ?? null, null);
    assert.equal(hermes.engine.renderedTools.at(-1), null);
  }
});

test("bad tools are 400s naming the field at fault", async () => {
  const cases: [Record<string, unknown>, string | null, string][] = [
    [
      { tools: [{ type: "custom", custom: { name: "x" } }], tool_choice: "required" },
      "unsupported_parameter",
      "tools[0].type",
    ],
    [{ tools: [{ type: "function" }], tool_choice: "required" }, null, "tools[0].function"],
    [
      { tools: [{ type: "function", function: { name: "bad name" } }], tool_choice: "required" },
      null,
      "tools[0].function.name",
    ],
    [{ tools: [WEATHER, WEATHER], tool_choice: "required" }, null, "tools[1].function.name"],
    [{ tools: [WEATHER], tool_choice: { type: "function", function: { name: "nope" } } }, null, "tool_choice"],
    [{ tool_choice: "required" }, null, "tool_choice"],
    [
      {
        tools: [
          {
            type: "function",
            function: {
              name: "f",
              parameters: { type: "object", properties: { a: { type: "string", uniqueItems: true, not: {} } } },
            },
          },
        ],
        tool_choice: "required",
      },
      "invalid_constraint",
      "tools[0].function.parameters",
    ],
    [{ tools: [WEATHER], tool_choice: "required", stop: ["x"] }, null, "stop"],
    [{ tools: [WEATHER], tool_choice: "required", response_format: { type: "json_object" } }, null, "tools"],
  ];
  for (const [fields, code, param] of cases) assertError(await chat(hermes, fields), badRequest(code, param));
});

test("tool calls and results in the history are paired by id, or the request is a 400", async () => {
  const call = { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } };
  const calling = { role: "assistant", content: null, tool_calls: [call] };
  const answer = { role: "tool", tool_call_id: "call_1", content: "sunny" };
  okJson(await chat(hermes, { tools: [WEATHER], messages: [...HI, calling, answer] }));
  const rendered = hermes.engine.renderedMessages.at(-1);
  assert.deepEqual(rendered?.slice(1), [
    {
      role: "assistant",
      content: "",
      toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city": "Paris"}' }],
    },
    { role: "tool", content: "sunny", toolCallId: "call_1" },
  ]);
  assertError(await chat(hermes, { messages: [...HI, calling] }), badRequest(null, "messages[2]"));
  assertError(await chat(hermes, { messages: [...HI, answer] }), badRequest(null, "messages[1].tool_call_id"));
  assertError(
    await chat(hermes, { messages: [...HI, calling, { role: "user", content: "and?" }, answer] }),
    badRequest(null, "messages[2]"),
  );
  assertError(
    await chat(hermes, { messages: [...HI, { role: "user", content: "x", tool_calls: [call] }] }),
    badRequest(null, "messages[1].tool_calls"),
  );
  assertError(
    await chat(hermes, { messages: [...HI, { role: "tool", content: "x" }] }),
    badRequest(null, "messages[1].tool_call_id"),
  );
});

test("a template without a tool syntax reads calls and results as the generic JSON", async () => {
  const call = { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } };
  okJson(
    await chat(generic, {
      tools: [WEATHER],
      tool_choice: "required",
      messages: [
        ...HI,
        { role: "assistant", tool_calls: [call] },
        { role: "tool", tool_call_id: "call_1", content: "sunny" },
      ],
    }),
  );
  const rendered = generic.engine.renderedMessages.at(-1);
  assert.deepEqual(rendered?.slice(2), [
    { role: "assistant", content: '{"tool_calls": [{"name": "get_weather", "arguments": {"city":"Paris"}}]}' },
    { role: "user", content: '{"tool_response":{"id":"call_1","content":"sunny"}}' },
  ]);
});

test("tool requests are counted by tool_choice; tool_choice none is not", async () => {
  const server = await startFakeServer({ contextSize: 2048, toolSyntax: "hermes" });
  try {
    okJson(await chat(server, { tools: [WEATHER] }));
    okJson(await chat(server, { tools: [WEATHER], tool_choice: "required" }));
    okJson(await chat(server, { tools: [WEATHER], tool_choice: "required" }));
    okJson(await chat(server, { tools: [WEATHER], tool_choice: "none" }));
    const metrics = (await server.app.inject({ method: "GET", url: "/metrics" })).body;
    assert.match(metrics, /^pagoda_tool_requests_total\{tool_choice="auto"\} 1$/m);
    assert.match(metrics, /^pagoda_tool_requests_total\{tool_choice="required"\} 2$/m);
    assert.match(metrics, /^pagoda_tool_requests_total\{tool_choice="named"\} 0$/m);
    // The fake model writes no call: each choice is read for calls and none is found.
    assert.match(metrics, /^pagoda_tool_calls_total 0$/m);
  } finally {
    await server.app.close();
  }
});

test("parameters nested too deep to walk are a 400 naming the tool, before anything serializes them", async () => {
  const depth = 100_000;
  const deep = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
  const body =
    `{"model":"${FAKE_MODEL_ID}","messages":[{"role":"user","content":"x"}],"tool_choice":"required",` +
    `"tools":[{"type":"function","function":{"name":"f","parameters":${deep}}}]}`;
  const response = await hermes.app.inject({
    method: "POST",
    url: "/v1/chat/completions",
    payload: body,
    headers: { "content-type": "application/json" },
  });
  assertError(response, badRequest("invalid_constraint", "tools[0].function.parameters"));
});

test("history arguments nested deeper than 128 are a 400 naming them; 128 and brackets inside strings are fine", async () => {
  const nested = (depth: number) => `${"[".repeat(depth)}"]]]}}}"${"]".repeat(depth)}`;
  const history = (args: string) => [
    ...HI,
    {
      role: "assistant",
      tool_calls: [{ id: "c", type: "function", function: { name: "get_weather", arguments: args } }],
    },
    { role: "tool", tool_call_id: "c", content: "r" },
  ];
  assertError(
    await chat(hermes, { messages: history(nested(100_000)) }),
    badRequest(null, "messages[1].tool_calls[0].function.arguments"),
  );
  okJson(await chat(hermes, { messages: history(nested(128)) }));
});
