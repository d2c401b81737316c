/**
 * OpenAI chat messages as the engine's plain `ChatMessage`s: text parts joined, assistant `tool_calls` and `tool`
 * results paired by `tool_call_id` (as OpenAI requires: every call answered, every answer to a call). A template
 * without a tool syntax gets calls and results in pagoda's generic JSON, and the tools described in a system message,
 * so the conversation reads the way a forced call is written.
 */
import type { ChatMessage, ChatToolCall, ChatToolSyntax } from "../engine/engine.ts";
import type { ToolDefinition } from "../tools/index.ts";
import { PagodaError } from "./errors.ts";
import type { ChatCompletionRequest } from "./schemas.ts";

type RequestMessage = ChatCompletionRequest["messages"][number];

/** `generic`: the tools of a request served with the generic call syntax, or null. */
export function toChatMessages(
  messages: readonly RequestMessage[],
  toolSyntax: ChatToolSyntax | null,
  genericTools: readonly ToolDefinition[] | null,
): ChatMessage[] {
  const converted = messages.map(toChatMessage);
  checkToolPairing(converted);
  if (toolSyntax !== null) return converted;
  const generic = converted.map(toGenericMessage);
  if (genericTools === null || genericTools.length === 0) return generic;
  const prompt = genericToolPrompt(genericTools);
  const first = generic[0];
  if (first?.role === "system" || first?.role === "developer") {
    return [{ role: first.role, content: `${first.content}\n\n${prompt}` }, ...generic.slice(1)];
  }
  return [{ role: "system", content: prompt }, ...generic];
}

function toChatMessage(message: RequestMessage, index: number): ChatMessage {
  const content = textOf(message, index);
  if (message.role === "tool") {
    if (message.tool_call_id == null) {
      throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "a tool message needs the tool_call_id it answers", {
        param: `messages[${index}].tool_call_id`,
      });
    }
    return { role: "tool", content, toolCallId: message.tool_call_id };
  }
  const calls = message.tool_calls ?? [];
  if (calls.length === 0) return { role: message.role, content };
  if (message.role !== "assistant") {
    throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "only assistant messages carry tool_calls", {
      param: `messages[${index}].tool_calls`,
    });
  }
  const toolCalls = calls.map((call, callIndex): ChatToolCall => {
    if (nestingDepth(call.function.arguments) > MAX_ARGUMENTS_DEPTH) {
      throw new PagodaError(
        "PAGODA_ERR_INVALID_REQUEST",
        `tool call arguments may nest at most ${MAX_ARGUMENTS_DEPTH} deep`,
        { param: `messages[${index}].tool_calls[${callIndex}].function.arguments` },
      );
    }
    return { id: call.id, name: call.function.name, arguments: call.function.arguments };
  });
  return { role: "assistant", content, toolCalls };
}

/**
 * Arguments the template renders as objects are walked recursively by the chat wrapper, so a history's arguments may
 * nest no deeper than a tool's parameters may (the schema converter's document depth).
 */
const MAX_ARGUMENTS_DEPTH = 128;

/** How deep JSON text nests its arrays and objects, read without parsing (brackets inside strings do not count). */
function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let isInString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (isInString) {
      if (char === "\\") i++;
      else if (char === '"') isInString = false;
    } else if (char === '"') isInString = true;
    else if (char === "{" || char === "[") deepest = Math.max(deepest, ++depth);
    else if (char === "}" || char === "]") depth--;
  }
  return deepest;
}

function textOf(message: RequestMessage, index: number): string {
  const content = message.content;
  if (content == null || typeof content === "string") return content ?? "";
  return content
    .map((part, partIndex) => {
      if (part.type === "text" && typeof part.text === "string") return part.text;
      throw new PagodaError("PAGODA_ERR_UNSUPPORTED", `Content parts of type ${part.type} are not supported`, {
        param: `messages[${index}].content[${partIndex}]`,
      });
    })
    .join("");
}

/** Each call is answered by one `tool` message after it and before the next user or assistant turn. */
function checkToolPairing(messages: readonly ChatMessage[]): void {
  let open = new Map<string, string>();
  messages.forEach((message, index) => {
    if (message.role === "tool") {
      const id = message.toolCallId ?? "";
      if (!open.has(id)) {
        throw new PagodaError(
          "PAGODA_ERR_INVALID_REQUEST",
          `tool message ${index} answers "${id}", which no assistant tool call before it left unanswered`,
          { param: `messages[${index}].tool_call_id` },
        );
      }
      open.delete(id);
      return;
    }
    if (open.size > 0) throw unanswered(open, index);
    open = new Map((message.toolCalls ?? []).map((call) => [call.id, call.name]));
    if (open.size < (message.toolCalls?.length ?? 0)) {
      throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "tool call ids must be unique within a message", {
        param: `messages[${index}].tool_calls`,
      });
    }
  });
  if (open.size > 0) throw unanswered(open, messages.length);
}

function unanswered(open: ReadonlyMap<string, string>, index: number): PagodaError {
  const ids = [...open.keys()].map((id) => `"${id}"`).join(", ");
  return new PagodaError(
    "PAGODA_ERR_INVALID_REQUEST",
    `an assistant message with tool_calls must be followed by tool messages answering each call; ${ids} unanswered before message ${index}`,
    { param: `messages[${index}]` },
  );
}

/** A call as the generic syntax writes it, a result as a user turn that says which call it answers. */
function toGenericMessage(message: ChatMessage): ChatMessage {
  if (message.role === "tool") {
    return {
      role: "user",
      content: JSON.stringify({ tool_response: { id: message.toolCallId, content: message.content } }),
    };
  }
  const calls = message.toolCalls ?? [];
  if (calls.length === 0) return message;
  const json = `{"tool_calls": [${calls
    .map((call) => `{"name": ${JSON.stringify(call.name)}, "arguments": ${argumentsJson(call.arguments)}}`)
    .join(", ")}]}`;
  return { role: "assistant", content: message.content === "" ? json : `${message.content}\n${json}` };
}

/** Arguments are JSON text; text that is not JSON is shown as a string rather than breaking the call's JSON. */
function argumentsJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return JSON.stringify(text);
  }
}

function genericToolPrompt(tools: readonly ToolDefinition[]): string {
  const described = tools.map((tool) => ({
    name: tool.name,
    ...(tool.description === undefined ? {} : { description: tool.description }),
    parameters: tool.parameters ?? { type: "object", properties: {} },
  }));
  return (
    "You can call functions. To call them, answer with only a JSON object of this form, and nothing else:\n" +
    '{"tool_calls": [{"name": "<function name>", "arguments": {<the arguments>}}]}\n' +
    `The functions, with JSON schemas of their arguments:\n${JSON.stringify(described)}`
  );
}
