/**
 * Reads the JSON of calls: one call object (`{"name": …, "arguments": {…}}`, keys in any order, `parameters`
 * accepted for `arguments`, other keys skipped) or, for wrapped syntaxes, `{"tool_calls": [call, …]}`. Fed one UTF-16
 * unit at a time, it reports the call's name once known and copies the arguments out as they arrive, minus
 * whitespace outside strings, holding them only while the name is still unknown.
 */
import type { ToolCallSyntax } from "./call-syntax.ts";
import { JsonScanner } from "./json-scanner.ts";
import { TOOL_NAME_PATTERN } from "./tool-definition.ts";

export interface ParsedToolCall {
  readonly name: string;
  /** Compact JSON text of an object. */
  readonly arguments: string;
}

export interface CallJsonEvents {
  callStart(index: number, name: string): void;
  argumentsDelta(index: number, text: string): void;
  callEnd(call: ParsedToolCall): void;
}

export type CallJsonStatus =
  /** The unit was read; the JSON goes on. */
  | "reading"
  /** The unit was read and closed the JSON. */
  | "done"
  /** A tentative start was read up to this unit (its first key, or its end) and is not a call. */
  | "notCall"
  /** A tentative start cannot be JSON with this unit, which was not read. */
  | "notJson"
  /** See `failure`. */
  | "failed";

const ARGUMENT_KEYS: readonly string[] = ["arguments", "parameters"];

type KeyRole = "name" | "arguments" | "other";

interface OpenCall {
  readonly index: number;
  name: string | null;
  arguments: string;
  /** Arguments read before the name (Hermes 2 Pro writes them first), passed on once the name is known. */
  heldArguments: string;
  hasArguments: boolean;
  key: KeyRole | null;
  readonly roles: Set<KeyRole>;
}

export class CallJsonReader {
  failure: string | null = null;
  private readonly syntax: ToolCallSyntax;
  private readonly toolNames: ReadonlySet<string> | null;
  private readonly events: CallJsonEvents;
  private readonly scanner = new JsonScanner();
  /** Members of a call object sit at this depth. */
  private readonly callDepth: number;
  private nextIndex: number;
  private numCalls = 0;
  private call: OpenCall | null = null;
  private hasWrapperKey = false;
  private isTentativeStart: boolean;

  /** `isTentative`: a JSON start that is a call only if its first key is one of the syntax's `commitKeys`. */
  constructor(
    syntax: ToolCallSyntax,
    toolNames: ReadonlySet<string> | null,
    firstIndex: number,
    isTentative: boolean,
    events: CallJsonEvents,
  ) {
    this.syntax = syntax;
    this.toolNames = toolNames;
    this.events = events;
    this.callDepth = syntax.isWrapped ? 3 : 1;
    this.nextIndex = firstIndex;
    this.isTentativeStart = isTentative;
  }

  get isTentative(): boolean {
    return this.isTentativeStart;
  }

  /** What the reader is inside, for "the output ended inside …". */
  get position(): string {
    if (this.call === null && this.syntax.isWrapped) return "the tool_calls object";
    return `call ${this.call?.index ?? this.nextIndex}`;
  }

  feed(unit: string): CallJsonStatus {
    const scanner = this.scanner;
    const depthBefore = scanner.depth;
    if (!scanner.feed(unit)) {
      return this.isTentativeStart ? "notJson" : this.fail(`${this.position} is not valid JSON: ${scanner.error}`);
    }
    let status: CallJsonStatus = "reading";
    if (this.syntax.isWrapped && depthBefore < this.callDepth) status = this.followWrapper(unit, depthBefore);
    else if (!this.syntax.isWrapped && depthBefore === 0) this.beginCall();
    if (status === "reading" && this.call !== null) status = this.followCall(this.call, unit, depthBefore);
    if (status !== "reading" || !scanner.isDone) return status;
    if (this.isTentativeStart) return "notCall";
    if (this.syntax.isWrapped && this.numCalls === 0) return this.fail("the tool_calls list is empty");
    return "done";
  }

  /** The `{"tool_calls": [...]}` levels around calls. */
  private followWrapper(unit: string, depthBefore: number): CallJsonStatus {
    const { completedKey, startedValue } = this.scanner;
    if (depthBefore === 1 && completedKey !== null) {
      if (!this.commit(completedKey)) return "notCall";
      if (completedKey !== "tool_calls" || this.hasWrapperKey) {
        return this.fail(`unexpected key ${JSON.stringify(completedKey)} in the tool_calls object`);
      }
      this.hasWrapperKey = true;
    } else if (startedValue && depthBefore === 1 && unit !== "[") {
      return this.fail("tool_calls is not a list");
    } else if (startedValue && depthBefore === 2) {
      if (unit !== "{") return this.fail(`call ${this.nextIndex} is not an object`);
      this.beginCall();
    }
    return "reading";
  }

  private beginCall(): void {
    this.call = {
      index: this.nextIndex,
      name: null,
      arguments: "",
      heldArguments: "",
      hasArguments: false,
      key: null,
      roles: new Set(),
    };
  }

  private followCall(call: OpenCall, unit: string, depthBefore: number): CallJsonStatus {
    const { scanner, callDepth } = this;
    if (depthBefore === callDepth && scanner.completedKey !== null) {
      const key = scanner.completedKey;
      if (!this.syntax.isWrapped && !this.commit(key)) return "notCall";
      const role: KeyRole = key === "name" ? "name" : ARGUMENT_KEYS.includes(key) ? "arguments" : "other";
      if (role !== "other" && call.roles.has(role)) return this.fail(`call ${call.index} has two ${role} keys`);
      call.roles.add(role);
      call.key = role;
    } else if (depthBefore === callDepth && scanner.startedValue) {
      if (call.key === "name" && unit !== '"') return this.fail(`the name of call ${call.index} is not a string`);
      if (call.key === "arguments" && unit !== "{") {
        return this.fail(`the arguments of call ${call.index} are not a JSON object`);
      }
      if (call.key === "arguments") call.hasArguments = true;
    }
    if (call.key === "arguments" && scanner.isSignificant && (depthBefore > callDepth || scanner.depth > callDepth)) {
      this.appendArguments(call, unit);
    }
    if (depthBefore === callDepth && scanner.completedString !== null && call.key === "name") {
      const status = this.nameCall(call, scanner.completedString);
      if (status !== "reading") return status;
    }
    if (depthBefore === callDepth && scanner.depth === callDepth - 1) return this.endCall(call);
    return "reading";
  }

  /** False if a tentative start's first key shows it is not a call. */
  private commit(firstKey: string): boolean {
    if (!this.isTentativeStart) return true;
    if (!this.syntax.commitKeys.includes(firstKey)) return false;
    this.isTentativeStart = false;
    return true;
  }

  private nameCall(call: OpenCall, name: string): CallJsonStatus {
    if (!TOOL_NAME_PATTERN.test(name) || (this.toolNames !== null && !this.toolNames.has(name))) {
      return this.fail(`call ${call.index} names an unknown function ${JSON.stringify(name)}`);
    }
    call.name = name;
    this.events.callStart(call.index, name);
    if (call.heldArguments !== "") this.appendArguments(call, call.heldArguments);
    call.heldArguments = "";
    return "reading";
  }

  private appendArguments(call: OpenCall, text: string): void {
    if (call.name === null) {
      call.heldArguments += text;
      return;
    }
    call.arguments += text;
    this.events.argumentsDelta(call.index, text);
  }

  private endCall(call: OpenCall): CallJsonStatus {
    if (call.name === null) return this.fail(`call ${call.index} has no "name"`);
    if (!call.hasArguments) this.appendArguments(call, "{}");
    this.events.callEnd({ name: call.name, arguments: call.arguments });
    this.call = null;
    this.nextIndex++;
    this.numCalls++;
    return "reading";
  }

  private fail(message: string): "failed" {
    this.failure ??= message;
    this.call = null;
    return "failed";
  }
}
