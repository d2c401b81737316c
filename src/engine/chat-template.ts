/**
 * The model's chat template as node-llama-cpp's chat wrappers hold it: which wrapper renders a conversation, which
 * tool-call syntax it teaches (read off the wrapper's function settings, which for a Jinja template node-llama-cpp
 * extracts by rendering probe calls), and OpenAI messages as the wrapper's history, tool calls paired with their
 * results.
 */
import { readFileSync } from "node:fs";
import {
  type ChatHistoryItem,
  type ChatModelFunctionCall,
  type ChatModelFunctions,
  type ChatWrapper,
  JinjaTemplateChatWrapper,
  type LlamaModel,
  resolveChatWrapper,
  type SpecializedChatWrapperTypeName,
  specializedChatWrapperTypeNames,
} from "node-llama-cpp";
import type { ChatMessage, ChatTool, ChatToolSyntax } from "./engine.ts";

/** A `--chat-template` that names neither a file nor a built-in template. */
export class ChatTemplateError extends Error {
  override readonly name = "ChatTemplateError";
}

/**
 * The wrapper for `template`: null resolves it from the GGUF; otherwise one of node-llama-cpp's built-in names
 * (`chatML`, `llama3.1`, `qwen`, …) or a path to a Jinja template file.
 */
export function chatWrapperFor(model: LlamaModel, template: string | null): ChatWrapper {
  if (template === null) return withToolSyntax(model, resolveChatWrapper(model));
  const builtIn = specializedChatWrapperTypeNames.find(
    (name): name is SpecializedChatWrapperTypeName => name === template,
  );
  if (builtIn !== undefined) return resolveChatWrapper(model, { type: builtIn });
  let text: string;
  try {
    text = readFileSync(template, "utf8");
  } catch (error) {
    throw new ChatTemplateError(
      `--chat-template: "${template}" is neither a readable file nor a built-in template ` +
        `(${specializedChatWrapperTypeNames.join(", ")})`,
      { cause: error },
    );
  }
  return new JinjaTemplateChatWrapper({ template: text, tokenizer: model.tokenizer });
}

/**
 * node-llama-cpp prefers its own wrapper when the GGUF's Jinja template renders like one, and some of its own teach a
 * call syntax of their own (Llama 3.1's `<function=…>`) where the template teaches JSON calls: for tool calling the
 * template's own syntax wins, so its wrapper is taken when it has one pagoda knows.
 */
function withToolSyntax(model: LlamaModel, resolved: ChatWrapper): ChatWrapper {
  if (toolSyntaxOf(resolved) !== null || model.fileInfo.metadata.tokenizer?.chat_template == null) return resolved;
  try {
    const jinja = resolveChatWrapper(model, { type: "jinjaTemplate", warningLogs: false });
    return toolSyntaxOf(jinja) === null ? resolved : jinja;
  } catch {
    return resolved;
  }
}

/** The call syntax a wrapper teaches, when it is one pagoda reads and forces. */
export function toolSyntaxOf(wrapper: ChatWrapper): ChatToolSyntax | null {
  if (wrapper instanceof JinjaTemplateChatWrapper && !wrapper.usingJinjaFunctionCallTemplate) return null;
  const call = wrapper.settings.functions.call;
  const prefix = plainText(call.prefix).trim();
  const paramsPrefix = plainText(call.paramsPrefix);
  if (prefix.startsWith("<tool_call>") && /"arguments":\s*$/.test(paramsPrefix)) return "hermes";
  if (/^\{\s*"name":\s*"$/.test(prefix) && /"parameters":\s*$/.test(paramsPrefix)) return "llama3";
  return null;
}

/** The wrapper's history for `messages`, ending where the model speaks next. */
export function toChatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const results = new Map<string, string>();
  for (const message of messages) if (message.role === "tool") results.set(message.toolCallId ?? "", message.content);
  const history: ChatHistoryItem[] = [];
  let isAfterResults = false;
  for (const message of messages) {
    if (message.role === "tool") {
      isAfterResults = true;
      continue;
    }
    if (message.role === "system" || message.role === "developer")
      history.push({ type: "system", text: message.content });
    else if (message.role === "user") history.push({ type: "user", text: message.content });
    else {
      const last = history.at(-1);
      // After its calls' results the model goes on in the same response, as the template renders it.
      const continued = isAfterResults && last?.type === "model" ? last.response : null;
      const response = continued ?? [];
      if (continued === null) history.push({ type: "model", response });
      if (message.content !== "") response.push(message.content);
      (message.toolCalls ?? []).forEach((call, index) => {
        const item: ChatModelFunctionCall = {
          type: "functionCall",
          name: call.name,
          params: parseArguments(call.arguments),
          result: results.get(call.id) ?? "",
          startsNewChunk: index === 0,
        };
        response.push(item);
      });
    }
    isAfterResults = false;
  }
  // The model answers tool results in the response that made the calls; otherwise a new response starts.
  if (!(isAfterResults && history.at(-1)?.type === "model")) history.push({ type: "model", response: [] });
  return history;
}

export function toChatModelFunctions(tools: readonly ChatTool[]): ChatModelFunctions {
  return Object.fromEntries(
    tools.map((tool) => [
      tool.name,
      {
        ...(tool.description === undefined ? {} : { description: tool.description }),
        ...(tool.parameters === undefined ? {} : { params: tool.parameters as ChatModelFunctions[string]["params"] }),
      },
    ]),
  );
}

/** The template renders arguments as the object they are; text that is not JSON stays text. */
function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The text of a wrapper setting: a string, a LlamaText (its `values`), or a special-token text (its `value`). */
function plainText(value: unknown): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(plainText).join("");
  if (typeof value !== "object" || value === null) return "";
  if ("values" in value) return plainText(value.values);
  if ("value" in value) return String(value.value);
  return "";
}
