/**
 * Synthetic models with a tool-calling chat template teach node-llama-cpp their call syntax. node-llama-cpp reads
 * it out of the Jinja template by rendering probe histories, or swaps in a specialised wrapper whose rendering it
 * judges equivalent; either way `settings.functions` is what it will parse a model's calls with, so these tests
 * pin it for each template and architecture, along with the prompt it renders and the `<tool_call>` tokens.
 */

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  type ChatHistoryItem,
  ChatMLChatWrapper,
  type ChatModelFunctions,
  type ChatWrapper,
  getLlama,
  JinjaTemplateChatWrapper,
  type Llama,
  LlamaLogLevel,
  type LlamaModel,
  LlamaText,
  QwenChatWrapper,
  resolveChatWrapper,
} from "node-llama-cpp";
import { synth } from "../helpers/gguf-files.ts";

let dir: string;
let llama: Llama;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-synth-chat-template-"));
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
});

after(async () => {
  await llama?.dispose();
  if (dir != null) await rm(dir, { recursive: true, force: true });
});

/** Writes a default-shape model with `template` through `pagoda synth` and runs `inspect` on it loaded. */
async function withModel(
  template: string,
  arch: "llama" | "qwen2",
  inspect: (model: LlamaModel) => void,
): Promise<void> {
  const path = join(dir, `${template}-${arch}.gguf`);
  const { code, stderr } = await synth("--chat-template", template, "--arch", arch, "--out", path);
  assert.equal(code, 0, stderr);
  const model = await llama.loadModel({ modelPath: path });
  try {
    inspect(model);
  } finally {
    await model.dispose();
  }
}

const text = (value: string | LlamaText | undefined): string | undefined =>
  value == null ? value : LlamaText(value).toString();

/** The call syntax as plain strings; special-token parts keep their text. */
function functionSyntax(wrapper: ChatWrapper): Record<string, string | undefined> {
  const { call, result, parallelism } = wrapper.settings.functions;
  return {
    callPrefix: text(call.prefix),
    callParamsPrefix: text(call.paramsPrefix),
    callSuffix: text(call.suffix),
    resultPrefix: text(result.prefix),
    resultSuffix: text(result.suffix),
    sectionPrefix: text(parallelism?.call.sectionPrefix),
    betweenCalls: text(parallelism?.call.betweenCalls),
    sectionSuffix: text(parallelism?.call.sectionSuffix),
  };
}

const FUNCTIONS: ChatModelFunctions = {
  get_weather: {
    description: "Current weather in a city",
    params: { type: "object", properties: { city: { type: "string" } } },
  },
};

const CALL_HISTORY: ChatHistoryItem[] = [
  { type: "user", text: "Weather in Paris?" },
  {
    type: "model",
    response: [
      "Let me check.",
      { type: "functionCall", name: "get_weather", params: { city: "Paris" }, result: "sunny" },
    ],
  },
];

function renderedPrompt(wrapper: ChatWrapper): string {
  return wrapper
    .generateContextState({ chatHistory: CALL_HISTORY, availableFunctions: FUNCTIONS })
    .contextText.toString();
}

test("hermes-tools on llama: the Jinja wrapper extracts <tool_call> blocks with parallel calls", async () => {
  await withModel("hermes-tools", "llama", (model) => {
    const wrapper = resolveChatWrapper(model);
    assert.ok(wrapper instanceof JinjaTemplateChatWrapper, wrapper.wrapperName);
    assert.equal(wrapper.usingJinjaFunctionCallTemplate, true);
    assert.deepEqual(functionSyntax(wrapper), {
      callPrefix: '<tool_call>\n{"name": "',
      callParamsPrefix: '", "arguments": ',
      callSuffix: "}\n</tool_call>",
      resultPrefix: "\n<tool_response>\n",
      resultSuffix: "\n</tool_response>",
      sectionPrefix: "",
      betweenCalls: "\n",
      sectionSuffix: "<|im_end|>\n<|im_start|>user",
    });

    const prompt = renderedPrompt(wrapper);
    assert.match(
      prompt,
      /^<\|im_start\|>system\n[\s\S]*<tools>\n\{"type": "function", "function": \{"name": "get_weather"/,
    );
    assert.ok(
      prompt.endsWith(
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\nLet me check.\n" +
          '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
          "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
      ),
      prompt,
    );
  });
});

test("hermes-tools on qwen2: node-llama-cpp swaps in its QwenChatWrapper, with the same call syntax", async () => {
  await withModel("hermes-tools", "qwen2", (model) => {
    const wrapper = resolveChatWrapper(model);
    assert.ok(wrapper instanceof QwenChatWrapper, wrapper.wrapperName);
    assert.deepEqual(functionSyntax(wrapper), {
      callPrefix: '<tool_call>\n{"name": "',
      callParamsPrefix: '", "arguments": ',
      callSuffix: "}\n</tool_call>",
      resultPrefix: "\n<tool_response>\n",
      resultSuffix: "\n</tool_response>",
      sectionPrefix: "",
      betweenCalls: "\n",
      sectionSuffix: "<|im_end|>\n",
    });
    // Qwen's wrapper renders with its own system wording, no line break before a call that follows text, and
    // results as JSON; node-llama-cpp's equivalence check passes all the same.
    const prompt = renderedPrompt(wrapper);
    assert.match(prompt, /<tools>\n\{"type": "function", "function": \{"name": "get_weather"/);
    assert.ok(
      prompt.includes(
        'Let me check.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
          '<|im_start|>user\n<tool_response>\n"sunny"\n</tool_response><|im_end|>\n',
      ),
      prompt,
    );
  });
});

for (const arch of ["llama", "qwen2"] as const) {
  test(`llama3-tools on ${arch}: the Jinja wrapper extracts bare {"name", "parameters"} calls, one at a time`, async () => {
    await withModel("llama3-tools", arch, (model) => {
      const wrapper = resolveChatWrapper(model);
      assert.ok(wrapper instanceof JinjaTemplateChatWrapper, wrapper.wrapperName);
      assert.equal(wrapper.usingJinjaFunctionCallTemplate, true);
      assert.deepEqual(functionSyntax(wrapper), {
        callPrefix: '{"name": "',
        callParamsPrefix: '", "parameters": ',
        // A single-call syntax has no suffix: the closing brace opens the result, which node-llama-cpp appends.
        callSuffix: "",
        resultPrefix: "}<|im_end|>\n<|im_start|>ipython\n",
        resultSuffix: "<|im_end|>\n<|im_start|>assistant\n",
        sectionPrefix: undefined,
        betweenCalls: undefined,
        sectionSuffix: undefined,
      });

      const prompt = renderedPrompt(wrapper);
      assert.match(prompt, /^<\|im_start\|>system\n[\s\S]*\{"type": "function", "function": \{"name": "get_weather"/);
      assert.ok(
        prompt.endsWith(
          "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\nLet me check." +
            '{"name": "get_weather", "parameters": {"city": "Paris"}}<|im_end|>\n' +
            "<|im_start|>ipython\nsunny<|im_end|>\n<|im_start|>assistant\n",
        ),
        prompt,
      );
    });
  });
}

test("plain chatml resolves to node-llama-cpp's ChatML wrapper, which has no tool syntax of the template's", async () => {
  for (const arch of ["llama", "qwen2"] as const)
    await withModel("chatml", arch, (model) => {
      const wrapper = resolveChatWrapper(model);
      assert.ok(wrapper instanceof ChatMLChatWrapper, `${arch}: ${wrapper.wrapperName}`);
      assert.equal(text(wrapper.settings.functions.call.prefix), "||call: ");
    });
});

test("<tool_call> and </tool_call> are single tokens that round-trip as text only in hermes-tools models", async () => {
  await withModel("hermes-tools", "llama", (model) => {
    const open = model.tokenize("<tool_call>", false);
    const close = model.tokenize("</tool_call>", false);
    // They sit just before the two chat markers at the end of the vocabulary.
    assert.deepEqual([...open, ...close], [2044, 2045]);
    assert.equal(model.detokenize(open, false), "<tool_call>");
    assert.equal(model.detokenize(close, false), "</tool_call>");
    const call = model.tokenize('<tool_call>\n{"name": "f"}\n</tool_call>', false);
    assert.equal(call[0], 2044);
    assert.equal(call.at(-1), 2045);
    // llama.cpp's SentencePiece tokenizer starts text after a special or user-defined token with "▁" (as after the
    // chat markers), so a round trip gains a space there.
    assert.equal(model.detokenize(call, false), '<tool_call> \n{"name": "f"}\n</tool_call>');
  });
  await withModel("llama3-tools", "llama", (model) => {
    assert.ok(model.tokenize("<tool_call>", false).length > 1);
  });
});
