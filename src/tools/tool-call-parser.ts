/**
 * Reads tool calls out of a model's output as it streams. Deltas may split anywhere; every unit of text is read
 * once by a state machine (free text → trigger → call JSON → close tag → free text), so a delta carrying a name
 * and its arguments together, or a whole call, yields exactly the events that a unit-by-unit feed would.
 *
 * Arguments are passed through, compacted: the model's own JSON text minus whitespace outside strings. So the
 * `argumentsDelta` fragments of a call concatenate to exactly its final `arguments`, which `JSON.parse` reads back
 * as the value the model wrote (escapes and number spellings kept), in one line.
 *
 * Nothing malformed is dropped: a call that cannot be read, or an output that ends inside one, ends parsing with a
 * `parseFailure` that says what and where; calls completed before it stay in `calls`.
 */

import { CallJsonReader, type ParsedToolCall } from "./call-json-reader.ts";
import type { ToolCallSyntax, ToolCallTrigger } from "./call-syntax.ts";
import { TriggerScanner } from "./trigger-scanner.ts";

export type { ParsedToolCall } from "./call-json-reader.ts";

export type ToolCallEvent =
  | { readonly type: "content"; readonly text: string }
  /** The call's name is known; `index` counts calls in this output from 0, as OpenAI's `tool_calls[].index`. */
  | { readonly type: "callStart"; readonly index: number; readonly name: string }
  | { readonly type: "argumentsDelta"; readonly index: number; readonly text: string };

export interface ToolCallParseResult {
  /** All content events joined; null when that is empty and there were calls (or a failure). */
  readonly content: string | null;
  readonly calls: readonly ParsedToolCall[];
  /** Why parsing stopped short, with the offset (UTF-16 units into the output) where it did; null if it did not. */
  readonly parseFailure: string | null;
}

export interface ToolCallParserOptions {
  /** Names a call may use; any other name is a parse failure. Defaults to any name OpenAI allows. */
  readonly toolNames?: Iterable<string>;
}

type Mode = "text" | "beforeJson" | "json" | "closeTag" | "failed" | "finished";

export class ToolCallParser {
  private readonly syntax: ToolCallSyntax;
  private readonly toolNames: ReadonlySet<string> | null;
  private readonly triggers: TriggerScanner;
  private mode: Mode = "text";
  private events: ToolCallEvent[] = [];
  private content = "";
  private readonly calls: ParsedToolCall[] = [];
  private reader: CallJsonReader | null = null;
  private failure: string | null = null;
  /** Content that follows a call starts at its first non-blank character. */
  private isAfterCall = false;
  private trigger: ToolCallTrigger | null = null;
  /** The text of a JSON start not yet known to be a call, which becomes content if it is not. */
  private tentativeText = "";
  private numCloseTagUnits = 0;
  /** A high surrogate that ended the last delta, joined to the next so no event splits a character. */
  private carry = "";
  /** UTF-16 units of output read, for failure messages. */
  private offset = 0;

  constructor(syntax: ToolCallSyntax, options: ToolCallParserOptions = {}) {
    this.syntax = syntax;
    this.toolNames = options.toolNames === undefined ? null : new Set(options.toolNames);
    this.triggers = new TriggerScanner(syntax.triggers);
  }

  /** Reads the next piece of output; returns the events it completes. */
  push(delta: string): ToolCallEvent[] {
    if (this.mode === "finished") throw new Error("ToolCallParser.push() called after finish()");
    let text = this.carry + delta;
    this.carry = "";
    const last = text.charCodeAt(text.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) {
      this.carry = text.slice(-1);
      text = text.slice(0, -1);
    }
    this.process(text);
    return this.takeEvents();
  }

  /** Ends the output: releases held-back text and returns the last events and the whole result. */
  finish(): { readonly events: ToolCallEvent[]; readonly result: ToolCallParseResult } {
    if (this.mode === "finished") throw new Error("ToolCallParser.finish() called twice");
    this.process(this.carry);
    this.carry = "";
    if (this.mode === "text") {
      this.emitContent(this.triggers.flush());
    } else if (this.mode === "json" && this.reader?.isTentative) {
      this.revert();
    } else if (this.mode === "json" || this.mode === "beforeJson") {
      this.fail(`the output ended inside ${this.reader?.position ?? `call ${this.calls.length}`}`);
    }
    // In "closeTag" the call's JSON is complete: a model that stops before `</tool_call>` still made the call.
    this.mode = "finished";
    const hasOutcome = this.calls.length > 0 || this.failure !== null;
    const result: ToolCallParseResult = {
      content: this.content === "" && hasOutcome ? null : this.content,
      calls: this.calls,
      parseFailure: this.failure,
    };
    return { events: this.takeEvents(), result };
  }

  private get isAtStart(): boolean {
    return this.content === "" && this.calls.length === 0;
  }

  private process(text: string): void {
    let rest = text;
    while (rest.length > 0 && this.mode !== "failed") {
      if (this.mode === "text") {
        const scan = this.triggers.scan(rest, this.isAtStart);
        this.offset += rest.length - scan.rest.length;
        this.emitContent(scan.content);
        if (scan.trigger === null) return;
        rest = scan.rest;
        this.enterCall(scan.trigger, scan.whitespace);
        continue;
      }
      let index = 0;
      while (index < rest.length && this.isReadingCall()) {
        if (this.feedUnit(rest[index]!)) {
          index++;
          this.offset++;
        }
      }
      rest = rest.slice(index);
    }
  }

  private isReadingCall(): boolean {
    return this.mode === "beforeJson" || this.mode === "json" || this.mode === "closeTag";
  }

  private enterCall(trigger: ToolCallTrigger, whitespace: string): void {
    this.trigger = trigger;
    if (!trigger.isJsonStart) {
      this.mode = "beforeJson";
      return;
    }
    this.startJson(true);
    this.tentativeText = whitespace;
    for (const unit of trigger.text) this.feedJson(unit);
  }

  private startJson(isTentative: boolean): void {
    this.mode = "json";
    this.reader = new CallJsonReader(this.syntax, this.toolNames, this.calls.length, isTentative, {
      callStart: (index, name) => this.emit({ type: "callStart", index, name }),
      argumentsDelta: (index, text) => this.emit({ type: "argumentsDelta", index, text }),
      callEnd: (call) => this.calls.push(call),
    });
  }

  /** False when the unit must be read again in the new mode (a tentative start turned out to be content). */
  private feedUnit(unit: string): boolean {
    if (this.mode === "beforeJson") {
      if (isBlank(unit)) return true;
      if (unit !== "{") {
        this.fail(`expected "{" after ${JSON.stringify(this.trigger?.text)}, found ${JSON.stringify(unit)}`);
        return true;
      }
      this.startJson(false);
    }
    if (this.mode === "json") return this.feedJson(unit);
    return this.feedCloseTag(unit);
  }

  private feedJson(unit: string): boolean {
    const reader = this.reader!;
    const wasTentative = reader.isTentative;
    const status = reader.feed(unit);
    if (status === "notJson") {
      this.revert();
      return false;
    }
    if (wasTentative) this.tentativeText += unit;
    if (status === "notCall") this.revert();
    else if (status === "failed") this.fail(reader.failure ?? "unreadable call");
    else if (status === "done") {
      this.reader = null;
      this.mode = this.syntax.closeTag === null ? "text" : "closeTag";
      this.numCloseTagUnits = 0;
      this.isAfterCall = true;
    }
    return true;
  }

  private feedCloseTag(unit: string): boolean {
    const tag = this.syntax.closeTag ?? "";
    if (this.numCloseTagUnits === 0 && isBlank(unit)) return true;
    if (unit !== tag[this.numCloseTagUnits]) {
      this.fail(`expected ${JSON.stringify(tag)} after call ${this.calls.length - 1}, found ${JSON.stringify(unit)}`);
      return true;
    }
    if (++this.numCloseTagUnits === tag.length) this.mode = "text";
    return true;
  }

  /** A tentative JSON start was not a call: its text, blanks before it included, is content after all. */
  private revert(): void {
    const text = this.tentativeText;
    this.tentativeText = "";
    this.reader = null;
    this.mode = "text";
    this.emitContent(text);
  }

  private emitContent(text: string): void {
    let from = 0;
    if (this.isAfterCall) {
      while (from < text.length && isBlank(text[from]!)) from++;
      if (from === text.length) return;
      this.isAfterCall = false;
    }
    if (from === text.length) return;
    const content = text.slice(from);
    this.content += content;
    this.emit({ type: "content", text: content });
  }

  /** Appends an event, merging it into the last one when both add text to the same thing. */
  private emit(event: ToolCallEvent): void {
    const last = this.events[this.events.length - 1];
    if (last?.type === "content" && event.type === "content") {
      this.events[this.events.length - 1] = { type: "content", text: last.text + event.text };
    } else if (last?.type === "argumentsDelta" && event.type === "argumentsDelta" && last.index === event.index) {
      this.events[this.events.length - 1] = { ...last, text: last.text + event.text };
    } else {
      this.events.push(event);
    }
  }

  private takeEvents(): ToolCallEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  /** Always false, so callers can `return this.fail(...)`. */
  private fail(message: string): false {
    if (this.failure === null) this.failure = `${message} (at offset ${this.offset})`;
    this.mode = "failed";
    this.reader = null;
    return false;
  }
}

function isBlank(unit: string): boolean {
  return unit === " " || unit === "\n" || unit === "\r" || unit === "\t";
}
