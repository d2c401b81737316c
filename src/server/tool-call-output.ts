/**
 * A choice's output read for tool calls, as OpenAI shapes them: streamed, one delta per event (content; a call's
 * header with `index`, `id`, `type` and `function.name`; then its `function.arguments` fragments), so no client has
 * to merge a header and its arguments from one delta; collected, `message.content` (null when only calls) and
 * `message.tool_calls`. Nothing is hidden, and both forms say the same: a call cut short (by `max_tokens`) after its
 * name is returned with the arguments written so far, as OpenAI returns it; output that never became a call is
 * returned as content.
 */
import { randomBytes } from "node:crypto";
import { type ToolCallEvent, ToolCallParser, type ToolCallSyntax } from "../tools/index.ts";
import type { OpenAiFinishReason } from "./openai-format.ts";

export interface ToolCallDelta {
  readonly content?: string;
  readonly tool_calls?: readonly {
    readonly index: number;
    readonly id?: string;
    readonly type?: "function";
    readonly function: { readonly name?: string; readonly arguments: string };
  }[];
}

export interface MessageToolCall {
  readonly id: string;
  readonly type: "function";
  readonly function: { readonly name: string; readonly arguments: string };
}

export interface ToolCallMessage {
  readonly content: string | null;
  readonly toolCalls: readonly MessageToolCall[];
  /** Every call was read whole. */
  readonly isComplete: boolean;
  readonly parseFailure: string | null;
}

export class ToolCallOutput {
  private readonly parser: ToolCallParser;
  /** Per call index, from its header on: the id sent and the arguments sent so far. */
  private readonly started: { readonly id: string; readonly name: string; arguments: string }[] = [];
  /** All output text, returned as content when a call cannot be read. */
  private text = "";
  private numContentChars = 0;
  private message: ToolCallMessage | null = null;

  constructor(syntax: ToolCallSyntax, toolNames: readonly string[]) {
    this.parser = new ToolCallParser(syntax, { toolNames });
  }

  /** The deltas this piece of output completes, in order. */
  push(text: string): ToolCallDelta[] {
    this.text += text;
    return this.parser.push(text).map((event) => this.toDelta(event));
  }

  /** The last deltas; after a parse failure before any call started, the output not yet sent as content. */
  finish(): ToolCallDelta[] {
    const { events, result } = this.parser.finish();
    const deltas = events.map((event) => this.toDelta(event));
    const toolCalls = this.started.map(
      (call): MessageToolCall => ({
        id: call.id,
        type: "function",
        function: { name: call.name, arguments: call.arguments },
      }),
    );
    if (result.parseFailure !== null && toolCalls.length === 0) {
      const unread = this.text.slice(this.numContentChars);
      if (unread.length > 0) deltas.push({ content: unread });
      this.message = { content: this.text, toolCalls, isComplete: false, parseFailure: result.parseFailure };
    } else {
      this.message = {
        content: result.content,
        toolCalls,
        isComplete: result.parseFailure === null,
        parseFailure: result.parseFailure,
      };
    }
    return deltas;
  }

  /** After `finish`. */
  get result(): ToolCallMessage {
    if (this.message === null) throw new Error("ToolCallOutput.result read before finish()");
    return this.message;
  }

  /** A choice whose calls were all read whole ended to hand them over, unless `max_tokens` cut it. */
  finishReason(reason: OpenAiFinishReason): OpenAiFinishReason {
    const { toolCalls, isComplete } = this.result;
    return reason === "stop" && toolCalls.length > 0 && isComplete ? "tool_calls" : reason;
  }

  private toDelta(event: ToolCallEvent): ToolCallDelta {
    if (event.type === "content") {
      this.numContentChars += event.text.length;
      return { content: event.text };
    }
    if (event.type === "callStart") {
      const id = newCallId();
      this.started[event.index] = { id, name: event.name, arguments: "" };
      return {
        tool_calls: [{ index: event.index, id, type: "function", function: { name: event.name, arguments: "" } }],
      };
    }
    const call = this.started[event.index];
    if (call !== undefined) call.arguments += event.text;
    return { tool_calls: [{ index: event.index, function: { arguments: event.text } }] };
  }
}

/** OpenAI's shape of call ids: `call_` and 24 letters and digits. */
function newCallId(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return `call_${Array.from(randomBytes(24), (byte) => alphabet[byte % alphabet.length]).join("")}`;
}
