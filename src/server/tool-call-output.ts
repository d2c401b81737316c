/**
 * A choice's output read for tool calls, as OpenAI shapes them: streamed, one delta per event (content; a call's
 * header with `index`, `id`, `type` and `function.name`; then its `function.arguments` fragments), so no client has
 * to merge a header and its arguments from one delta; collected, `message.content` (null when only calls) and
 * `message.tool_calls`. A call that cannot be read is never hidden: its text is returned as content.
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
  readonly parseFailure: string | null;
}

export class ToolCallOutput {
  private readonly parser: ToolCallParser;
  private readonly ids: string[] = [];
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

  /** The last deltas; after a parse failure, the output not yet sent as content. */
  finish(): ToolCallDelta[] {
    const { events, result } = this.parser.finish();
    const deltas = events.map((event) => this.toDelta(event));
    const calls = result.calls.map(
      (call, index): MessageToolCall => ({
        id: this.ids[index] ?? newCallId(),
        type: "function",
        function: { name: call.name, arguments: call.arguments },
      }),
    );
    if (result.parseFailure !== null) {
      const unread = this.text.slice(this.numContentChars);
      if (calls.length === 0 && unread.length > 0) deltas.push({ content: unread });
      this.message = {
        content: calls.length === 0 ? this.text : result.content,
        toolCalls: calls,
        parseFailure: result.parseFailure,
      };
    } else {
      this.message = { content: result.content, toolCalls: calls, parseFailure: null };
    }
    return deltas;
  }

  /** After `finish`. */
  get result(): ToolCallMessage {
    if (this.message === null) throw new Error("ToolCallOutput.result read before finish()");
    return this.message;
  }

  /** A choice that made calls finished to hand them over, unless `max_tokens` cut it. */
  finishReason(reason: OpenAiFinishReason): OpenAiFinishReason {
    return reason === "stop" && this.result.toolCalls.length > 0 ? "tool_calls" : reason;
  }

  private toDelta(event: ToolCallEvent): ToolCallDelta {
    if (event.type === "content") {
      this.numContentChars += event.text.length;
      return { content: event.text };
    }
    if (event.type === "callStart") {
      const id = newCallId();
      this.ids[event.index] = id;
      return {
        tool_calls: [{ index: event.index, id, type: "function", function: { name: event.name, arguments: "" } }],
      };
    }
    return { tool_calls: [{ index: event.index, function: { arguments: event.text } }] };
  }
}

/** OpenAI's shape of call ids: `call_` and 24 letters and digits. */
function newCallId(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return `call_${Array.from(randomBytes(24), (byte) => alphabet[byte % alphabet.length]).join("")}`;
}
