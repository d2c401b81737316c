/**
 * Drives a ToolCallParser over a list of deltas and checks what must hold however the output was split: content
 * events join to the result's content, each call starts once and before its arguments, and each call's argument
 * fragments join to exactly its final `arguments`.
 */
import assert from "node:assert/strict";
import type { ToolCallSyntax } from "../../../src/tools/call-syntax.ts";
import {
  type ToolCallEvent,
  type ToolCallParseResult,
  ToolCallParser,
  type ToolCallParserOptions,
} from "../../../src/tools/tool-call-parser.ts";

export interface ParserRun {
  readonly events: readonly ToolCallEvent[];
  readonly result: ToolCallParseResult;
}

export function runParser(
  syntax: ToolCallSyntax,
  deltas: readonly string[],
  options: ToolCallParserOptions = {},
): ParserRun {
  const parser = new ToolCallParser(syntax, options);
  const events: ToolCallEvent[] = [];
  for (const delta of deltas) events.push(...parser.push(delta));
  const finish = parser.finish();
  events.push(...finish.events);
  checkInvariants(events, finish.result);
  return { events: mergeEvents(events), result: finish.result };
}

/** The same stream with adjacent fragments of the same kind merged: what a client accumulates. */
export function mergeEvents(events: readonly ToolCallEvent[]): ToolCallEvent[] {
  const merged: ToolCallEvent[] = [];
  for (const event of events) {
    const last = merged[merged.length - 1];
    if (last?.type === "content" && event.type === "content") {
      merged[merged.length - 1] = { type: "content", text: last.text + event.text };
    } else if (last?.type === "argumentsDelta" && event.type === "argumentsDelta" && last.index === event.index) {
      merged[merged.length - 1] = { ...last, text: last.text + event.text };
    } else merged.push(event);
  }
  return merged;
}

function checkInvariants(events: readonly ToolCallEvent[], result: ToolCallParseResult): void {
  let content = "";
  const started = new Map<number, string>();
  const argumentsByIndex = new Map<number, string>();
  for (const event of events) {
    if (event.type !== "callStart") {
      assert.notEqual(event.text, "", "an event carries text");
      assert.ok(!hasLoneSurrogate(event.text), `event text ${JSON.stringify(event.text)} splits a character`);
    }
    if (event.type === "content") content += event.text;
    else if (event.type === "callStart") {
      assert.ok(!started.has(event.index), `call ${event.index} starts once`);
      assert.equal(event.index, started.size, "calls start in index order");
      started.set(event.index, event.name);
    } else {
      assert.ok(started.has(event.index), `call ${event.index} starts before its arguments`);
      argumentsByIndex.set(event.index, (argumentsByIndex.get(event.index) ?? "") + event.text);
    }
  }
  assert.equal(content, result.content ?? "");
  result.calls.forEach((call, index) => {
    assert.equal(started.get(index), call.name);
    assert.equal(argumentsByIndex.get(index), call.arguments);
    const parsed: unknown = JSON.parse(call.arguments);
    assert.ok(typeof parsed === "object" && parsed !== null && !Array.isArray(parsed), "arguments are an object");
    const outsideStrings = call.arguments.replace(/"(?:[^"\\]|\\.)*"/g, '""');
    assert.doesNotMatch(outsideStrings, /[ \t\r\n]/, "arguments are compact");
  });
}

/** `text` split after `at`, and at every other listed boundary too. */
export function splitAt(text: string, ...boundaries: number[]): string[] {
  const parts: string[] = [];
  let from = 0;
  for (const at of [...boundaries].sort((a, b) => a - b)) {
    parts.push(text.slice(from, at));
    from = at;
  }
  parts.push(text.slice(from));
  return parts;
}

function hasLoneSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) return true;
  }
  return false;
}
