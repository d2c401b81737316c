/**
 * Tool calls behave like any output inside the engine loop: on a hermes-tools synthetic model served with n-gram
 * speculation and a KV pool too small for the requests at once (so some are preempted and resumed by recompute,
 * the lazy grammar's trigger watch replayed), every call of every choice is whole and valid for its schema. The
 * bias on `<tool_call>` stands in for a trained model's choice to call (random weights never call by themselves).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ajv } from "ajv";
import { startHermesToolServer, type ToolModelServer } from "../helpers/tool-calls.ts";

const PARAMETERS = {
  type: "object",
  properties: {
    city: { type: "string", pattern: "^[a-z]{1,10}$" },
    days: { type: "integer", minimum: 1, maximum: 7 },
  },
  required: ["city", "days"],
  additionalProperties: false,
};
const validate = new Ajv().compile(PARAMETERS);
const TOOLS = [{ type: "function", function: { name: "forecast", parameters: PARAMETERS } }];

let server: ToolModelServer;

before(async () => {
  server = await startHermesToolServer([
    "--spec-mode",
    "ngram",
    "--parallel",
    "4",
    "--ctx-size",
    "1024",
    "--kv-cache-tokens",
    "640",
  ]);
});

after(async () => {
  await server?.close();
});

interface Choice {
  readonly message: { readonly tool_calls?: readonly { readonly function: { readonly arguments: string } }[] };
  readonly finish_reason: string;
}

async function chat(fields: Record<string, unknown>): Promise<Choice[]> {
  const response = await fetch(`${server.baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      messages: [{ role: "user", content: "Forecast for Oslo, please, for the next days." }],
      tools: TOOLS,
      parallel_tool_calls: false,
      max_tokens: 200,
      ...fields,
    }),
  });
  const body = (await response.json()) as { choices: Choice[] };
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.choices;
}

test("under speculation and preemption, auto and required calls of every choice are whole and valid", async () => {
  const before = server.runtime.loop.kvCacheState().numPreemptions;
  const steered = { logit_bias: { [server.toolCallToken]: 100 } };
  const requests = [
    ...Array.from({ length: 4 }, (_, seed) => chat({ ...steered, seed, temperature: 0.7, n: 2 })),
    ...Array.from({ length: 2 }, () => chat({ ...steered, temperature: 0 })),
    ...Array.from({ length: 2 }, (_, seed) => chat({ tool_choice: "required", seed, temperature: 0.9 })),
  ];
  const choices = (await Promise.all(requests)).flat();
  assert.equal(choices.length, 12);
  for (const choice of choices) {
    assert.equal(choice.finish_reason, "tool_calls", JSON.stringify(choice));
    assert.equal(choice.message.tool_calls?.length, 1);
    const args = JSON.parse(choice.message.tool_calls?.[0]?.function.arguments ?? "null");
    assert.ok(validate(args), JSON.stringify(args));
  }
  const state = server.runtime.loop.kvCacheState();
  assert.ok(state.numPreemptions > before, "the small pool preempted some of them");
  assert.equal(state.numUsedBlocks, 0, "every block went back to the pool");
});
