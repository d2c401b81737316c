/**
 * The template families end to end on real files: synthetic GGUFs the project writes with a Qwen2.5-style
 * (`<tool_call>` blocks, on the llama and qwen2 architectures) and a Llama-3.1-style (bare `{"name", "parameters"}`)
 * tool template, and stories260K given a template file with `--chat-template`. The synthetic models' weights are
 * random, so where a call under `auto` is tested, a logit bias on `<tool_call>` stands in for a trained model's
 * choice to call; everything after that token is the grammar's and the parser's doing.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Ajv } from "ajv";
import { syntheticChatTemplate } from "../../src/gguf/synthetic-chat-templates.ts";
import { synth, withTempDir } from "../helpers/gguf-files.ts";
import { type ModelServer, startModelServer } from "../helpers/model-server.ts";

// The city is bounded by an ASCII pattern, not by maxLength over any character: llama.cpp's grammar counts an invalid
// UTF-8 byte sequence (which a random model's byte tokens can form) as one character, where a decoder sees several.
const PARAMETERS = {
  type: "object",
  properties: {
    city: { type: "string", pattern: "^[A-Za-z ]{1,12}$" },
    days: { type: "integer", minimum: 1, maximum: 7 },
    unit: { enum: ["celsius", "fahrenheit"] },
  },
  required: ["city", "days", "unit"],
  additionalProperties: false,
};
const TOOLS = [
  { type: "function", function: { name: "get_weather", description: "Forecast", parameters: PARAMETERS } },
];
const MESSAGES = [{ role: "user", content: "Weather in Paris?" }];
const validate = new Ajv().compile(PARAMETERS);

let dir = "";
let release: () => void = () => {};
const ready = new Promise<void>((resolve) => {
  void withTempDir("tool-templates", async (tempDir) => {
    dir = tempDir;
    resolve();
    await new Promise<void>((done) => {
      release = done;
    });
  });
});

after(() => release());

interface ToolCallBody {
  readonly function: { readonly name: string; readonly arguments: string };
}

interface ChatBody {
  readonly choices: {
    readonly message: { readonly content: string | null; readonly tool_calls?: readonly ToolCallBody[] };
    readonly finish_reason: string;
  }[];
  readonly usage: { readonly prompt_tokens: number };
  readonly error: { readonly param: string | null };
}

async function post(server: ModelServer, body: Record<string, unknown>): Promise<{ status: number; body: ChatBody }> {
  const response = await fetch(`${server.baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: MESSAGES, tools: TOOLS, max_tokens: 120, temperature: 0, ...body }),
  });
  return { status: response.status, body: (await response.json()) as ChatBody };
}

function assertValidCalls(message: ChatBody["choices"][number]["message"] | undefined) {
  assert.ok((message?.tool_calls?.length ?? 0) > 0, JSON.stringify(message));
  for (const call of message?.tool_calls ?? []) {
    assert.equal(call.function.name, "get_weather");
    assert.ok(validate(JSON.parse(call.function.arguments)), call.function.arguments);
  }
}

async function synthModel(name: string, ...flags: string[]): Promise<string> {
  await ready;
  const file = path.join(dir, `${name}.gguf`);
  const result = await synth(...flags, "--out", file);
  assert.equal(result.code, 0, result.stderr);
  return file;
}

for (const arch of ["llama", "qwen2"]) {
  describe(`a hermes-tools template on ${arch}`, () => {
    let server: ModelServer;
    let toolCallToken = 0;
    before(async () => {
      const model = await synthModel(`hermes-${arch}`, "--chat-template", "hermes-tools", "--arch", arch);
      server = await startModelServer(["--model", model, "--parallel", "4", "--ctx-size", "2048"]);
      toolCallToken = server.runtime.engine.tokenize("<tool_call>")[0] ?? -1;
    });
    after(() => server.close());

    test("is read as the hermes syntax", () => {
      assert.equal(server.runtime.engine.info.toolSyntax, "hermes");
    });

    test("auto: once the model writes <tool_call>, the call is forced valid, in each of n choices", async () => {
      const steered = { logit_bias: { [toolCallToken]: 100 }, temperature: 0.8, seed: 7, max_tokens: 200 };
      const { status, body } = await post(server, { ...steered, n: 2, parallel_tool_calls: false });
      assert.equal(status, 200, JSON.stringify(body));
      for (const choice of body.choices) {
        assertValidCalls(choice.message);
        assert.equal(choice.message.tool_calls?.length, 1);
        assert.equal(choice.message.content, null);
        assert.equal(choice.finish_reason, "tool_calls");
      }
      // In parallel the grammar lets the model open another call or end after each one: every call it finished
      // (before max_tokens, if that came first) is valid.
      const parallel = await post(server, steered);
      assert.ok(["tool_calls", "length"].includes(parallel.body.choices[0]?.finish_reason ?? ""));
      assertValidCalls(parallel.body.choices[0]?.message);
    });

    test("auto without steering: the model's text is content", async () => {
      const { status, body } = await post(server, { max_tokens: 20 });
      assert.equal(status, 200);
      assert.equal(typeof body.choices[0]?.message.content, "string");
      assert.equal(body.choices[0]?.message.tool_calls, undefined);
    });

    test("required and named force calls in the template's own syntax", async () => {
      for (const tool_choice of ["required", { type: "function", function: { name: "get_weather" } }]) {
        const { body } = await post(server, { tool_choice, parallel_tool_calls: false, max_tokens: 300 });
        assertValidCalls(body.choices[0]?.message);
        assert.equal(body.choices[0]?.finish_reason, "tool_calls");
      }
    });

    test("a two-turn history with a call and its result renders and answers", async () => {
      const call = {
        id: "call_a",
        type: "function",
        function: { name: "get_weather", arguments: '{"city":"Paris","days":2,"unit":"celsius"}' },
      };
      const { status, body } = await post(server, {
        messages: [
          ...MESSAGES,
          { role: "assistant", content: null, tool_calls: [call] },
          { role: "tool", tool_call_id: "call_a", content: "sunny" },
        ],
        max_tokens: 10,
      });
      assert.equal(status, 200, JSON.stringify(body));
      assert.ok(body.usage.prompt_tokens > 0);
    });
  });
}

describe("a llama3-tools template", () => {
  let server: ModelServer;
  before(async () => {
    const model = await synthModel("llama3", "--chat-template", "llama3-tools");
    server = await startModelServer(["--model", model, "--parallel", "4", "--ctx-size", "2048"]);
  });
  after(() => server.close());

  test("is read as the llama3 syntax; forced calls are one bare object; auto without a call is content", async () => {
    assert.equal(server.runtime.engine.info.toolSyntax, "llama3");
    const forced = await post(server, { tool_choice: "required", max_tokens: 300 });
    assertValidCalls(forced.body.choices[0]?.message);
    assert.equal(forced.body.choices[0]?.message.tool_calls?.length, 1);
    const free = await post(server, { max_tokens: 20 });
    assert.equal(free.status, 200);
    assert.equal(free.body.choices[0]?.message.tool_calls, undefined);
  });
});

describe("stories260K with --chat-template", () => {
  test("a hermes template file gives it the hermes syntax, so auto is served and required writes <tool_call> blocks", async () => {
    await ready;
    const file = path.join(dir, "hermes.jinja");
    writeFileSync(file, syntheticChatTemplate("hermes-tools").text);
    const server = await startModelServer(["--chat-template", file, "--ctx-size", "2048"]);
    try {
      assert.equal(server.runtime.engine.info.toolSyntax, "hermes");
      assert.equal((await post(server, { max_tokens: 8 })).status, 200);
      const forced = await post(server, { tool_choice: "required", parallel_tool_calls: false, max_tokens: 300 });
      assertValidCalls(forced.body.choices[0]?.message);
    } finally {
      await server.close();
    }
  });

  test("a built-in name without tools leaves auto refused; a missing file stops the start with a clear error", async () => {
    const server = await startModelServer(["--chat-template", "chatML"]);
    try {
      assert.equal(server.runtime.engine.info.toolSyntax, null);
      const { status, body } = await post(server, {});
      assert.equal(status, 400);
      assert.equal(body.error.param, "tool_choice");
    } finally {
      await server.close();
    }
    await assert.rejects(startModelServer(["--chat-template", path.join(dir, "missing.jinja")]), /--chat-template/);
  });
});
