/**
 * The chat templates of synthetic models: what each adds to the vocabulary and the name, the `--chat-template`
 * flag, and how the templates render OpenAI-shaped messages. Rendering uses @huggingface/jinja, the renderer
 * node-llama-cpp itself uses (it comes with node-llama-cpp), so no model is needed; test/model/synth-chat-template
 * checks what node-llama-cpp makes of the templates.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Template } from "@huggingface/jinja";
import type { GgufKv } from "../../src/gguf/gguf-kv.ts";
import { GgufWriter } from "../../src/gguf/gguf-writer.ts";
import { parseSynthArgs } from "../../src/gguf/synth-args.ts";
import { syntheticChatTemplate } from "../../src/gguf/synthetic-chat-templates.ts";
import { syntheticModelSpec } from "../../src/gguf/synthetic-model.ts";
import { SYNTHETIC_CHAT_TEMPLATE } from "../../src/gguf/synthetic-vocabulary.ts";
import { synth } from "../helpers/gguf-files.ts";

const SMALL = { vocabSize: 512, embeddingLength: 64, blockCount: 1, headCount: 4, headCountKv: 2 };

function metadataOf(options: Parameters<typeof syntheticModelSpec>[0]): Map<string, GgufKv["value"]> {
  return new Map(syntheticModelSpec(options).spec.metadata.map((kv) => [kv.key, kv.value]));
}

/** The header a spec is written with: metadata and tensor infos, no weights generated. */
function headerBytesOf(options: Parameters<typeof syntheticModelSpec>[0]): Buffer {
  return new GgufWriter(syntheticModelSpec(options).spec).chunks().next().value as Buffer;
}

test("chatml, the default, writes exactly the header of a model without the option", () => {
  assert.deepEqual(headerBytesOf({ ...SMALL, chatTemplate: "chatml" }), headerBytesOf(SMALL));
  const metadata = metadataOf(SMALL);
  assert.equal(metadata.get("tokenizer.chat_template"), SYNTHETIC_CHAT_TEMPLATE);
  assert.equal(metadata.get("general.name"), "pagoda-synthetic-v512-d64-l1-h4-kv2-ff384-f16");
});

test("hermes-tools puts user-defined <tool_call> tokens before the chat markers and keeps ids 0..258", () => {
  const chatml = metadataOf(SMALL);
  const hermes = metadataOf({ ...SMALL, chatTemplate: "hermes-tools" });
  const tokens = hermes.get("tokenizer.ggml.tokens") as string[];
  const types = hermes.get("tokenizer.ggml.token_type") as number[];
  assert.equal(tokens.length, 512);
  assert.deepEqual(tokens.slice(0, 259), (chatml.get("tokenizer.ggml.tokens") as string[]).slice(0, 259));
  assert.deepEqual(tokens.slice(-4), ["<tool_call>", "</tool_call>", "<|im_start|>", "<|im_end|>"]);
  assert.deepEqual(types.slice(-4), [4, 4, 3, 3]);
  assert.equal(hermes.get("tokenizer.ggml.eot_token_id"), 511);
  assert.equal(hermes.get("tokenizer.chat_template"), syntheticChatTemplate("hermes-tools").text);
  assert.equal(hermes.get("general.name"), "pagoda-synthetic-v512-d64-l1-h4-kv2-ff384-hermes-tools-f16");
});

test("llama3-tools keeps the chatml vocabulary and changes only the template and the name", () => {
  const chatml = metadataOf(SMALL);
  const llama3 = metadataOf({ ...SMALL, chatTemplate: "llama3-tools" });
  for (const key of ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"])
    assert.deepEqual(llama3.get(key), chatml.get(key), key);
  assert.equal(llama3.get("general.name"), "pagoda-synthetic-v512-d64-l1-h4-kv2-ff384-llama3-tools-f16");
  assert.notEqual(llama3.get("tokenizer.chat_template"), SYNTHETIC_CHAT_TEMPLATE);
});

test("the tool tokens raise the smallest vocabulary by two, and unknown templates are refused", () => {
  assert.doesNotThrow(() => syntheticModelSpec({ ...SMALL, vocabSize: 262 }));
  assert.throws(() => syntheticModelSpec({ ...SMALL, vocabSize: 263, chatTemplate: "hermes-tools" }), /at least 264/);
  assert.doesNotThrow(() => syntheticModelSpec({ ...SMALL, vocabSize: 264, chatTemplate: "hermes-tools" }));
  assert.throws(
    () => syntheticModelSpec({ ...SMALL, chatTemplate: "mistral" as never }),
    /unsupported chatTemplate mistral/,
  );
});

test("--chat-template sets the template, keeps a --like name with the template added, and is checked", async () => {
  const like = parseSynthArgs(["--like", "qwen2.5-0.5b", "--chat-template", "hermes-tools", "--dry-run"]);
  assert.equal(like.kind, "synth");
  if (like.kind !== "synth") return;
  assert.equal(like.request.options.chatTemplate, "hermes-tools");
  assert.equal(like.request.options.label, "qwen2.5-0.5b-hermes-tools-q4_0");
  const plain = parseSynthArgs(["--like", "qwen2.5-0.5b", "--chat-template", "chatml", "--dry-run"]);
  assert.equal(plain.kind === "synth" && plain.request.options.label, "qwen2.5-0.5b-q4_0");

  const dryRun = await synth("--chat-template", "llama3-tools", "--dry-run");
  assert.equal(dryRun.code, 0, dryRun.stderr);
  assert.match(dryRun.stdout, /\n {2}template {4}llama3-tools /);

  const bad = await synth("--chat-template", "mistral", "--dry-run");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--chat-template must be one of chatml, hermes-tools, llama3-tools, got "mistral"/);
  const derive = await synth("--derive-from", "a.gguf", "--keep-layers", "1", "--chat-template", "hermes-tools");
  assert.equal(derive.code, 2);
  assert.match(derive.stderr, /cannot be combined with --chat-template/);
});

function render(name: "hermes-tools" | "llama3-tools", context: Record<string, unknown>): string {
  return new Template(syntheticChatTemplate(name).text).render({ add_generation_prompt: true, ...context });
}

const call = (name: string, args: unknown) => ({
  id: `call_${name}`,
  type: "function",
  function: { name, arguments: args },
});

test("hermes-tools renders string arguments as they are and mappings as JSON, results in one user turn", () => {
  const rendered = render("hermes-tools", {
    messages: [
      { role: "user", content: "Weather and time?" },
      { role: "assistant", content: null, tool_calls: [call("weather", '{"city":"Paris"}'), call("time", { tz: 1 })] },
      { role: "tool", tool_call_id: "call_weather", content: "sunny" },
      { role: "tool", tool_call_id: "call_time", content: { hour: 12 } },
    ],
  });
  assert.equal(
    rendered,
    "<|im_start|>user\nWeather and time?<|im_end|>\n<|im_start|>assistant\n" +
      '<tool_call>\n{"name": "weather", "arguments": {"city":"Paris"}}\n</tool_call>\n' +
      '<tool_call>\n{"name": "time", "arguments": {"tz": 1}}\n</tool_call><|im_end|>\n' +
      '<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\n{"hour": 12}\n</tool_response>' +
      "<|im_end|>\n<|im_start|>assistant\n",
  );
});

test("without tools, the tool templates render a conversation exactly as plain ChatML does", () => {
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello" },
    { role: "user", content: "Bye" },
  ];
  const chatml = new Template(SYNTHETIC_CHAT_TEMPLATE).render({ messages, add_generation_prompt: true });
  assert.equal(render("hermes-tools", { messages }), chatml);
  assert.equal(render("llama3-tools", { messages }), chatml);
});

test("the tool templates list the tools as JSON in the system turn, after any system message", () => {
  const tools = [{ type: "function", function: { name: "weather", parameters: { type: "object" } } }];
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
  ];
  const toolJson = '{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}';
  const hermes = render("hermes-tools", { messages, tools });
  assert.ok(hermes.startsWith("<|im_start|>system\nBe brief.\n\n"), hermes);
  assert.ok(hermes.includes(`<tools>\n${toolJson}\n</tools>`), hermes);
  assert.ok(hermes.includes('<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'));
  assert.ok(hermes.endsWith("<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), hermes);
  const llama3 = render("llama3-tools", { messages: messages.slice(1), tools });
  assert.ok(llama3.startsWith("<|im_start|>system\nThese functions are available"), llama3);
  assert.ok(llama3.includes(`\n\n${toolJson}\n\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n`), llama3);
});

test("llama3-tools answers a call with bare JSON after any text, results in an ipython turn, one call a turn", () => {
  const rendered = render("llama3-tools", {
    messages: [
      { role: "user", content: "Weather?" },
      { role: "assistant", content: "Checking.", tool_calls: [call("weather", '{"city":"Paris"}')] },
      { role: "tool", content: "sunny" },
    ],
  });
  assert.equal(
    rendered,
    "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n" +
      'Checking.{"name": "weather", "parameters": {"city":"Paris"}}<|im_end|>\n' +
      "<|im_start|>ipython\nsunny<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.throws(
    () =>
      render("llama3-tools", {
        messages: [{ role: "assistant", tool_calls: [call("a", {}), call("b", {})] }],
      }),
    /exactly one tool call per assistant message/,
  );
});
