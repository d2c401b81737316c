/**
 * The rules every JSON grammar shares: whitespace, string characters, numbers and any value. Each is defined the
 * first time it is used, under whatever name the builder gives it, so schema-derived rules never clash with them.
 *
 * Whitespace is bounded on purpose: one space, or a newline and at most 20 spaces or tabs (llama.cpp's choice),
 * so a model cannot loop on whitespace forever. It may follow `{`, `[`, `,`, `:` and every value; not precede the
 * root value (stricter than JSON).
 */
import type { GbnfBuilder } from "./gbnf-builder.ts";
import { INTEGER_GBNF } from "./integer-range.ts";
import { NUMBER_GBNF } from "./number-range.ts";

const BODIES = {
  ws: `(" " | "\\n" [ \\t]{0,20})?`,
  // One character of a JSON string. Escaped surrogates are refused: an escaped pair would count as two characters
  // in the grammar but as one for minLength, and a lone one is not text.
  char: `[^"\\\\\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" ([0-9a-cA-CeEfF] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))`,
  integer: INTEGER_GBNF,
  number: NUMBER_GBNF,
  boolean: `"true" | "false"`,
} as const;

type SimpleRule = keyof typeof BODIES;

export class JsonRules {
  private readonly builder: GbnfBuilder;
  private readonly names = new Map<string, string>();

  constructor(builder: GbnfBuilder) {
    this.builder = builder;
  }

  get ws(): string {
    return this.simple("ws");
  }

  get char(): string {
    return this.simple("char");
  }

  get integer(): string {
    return this.simple("integer");
  }

  get number(): string {
    return this.simple("number");
  }

  get boolean(): string {
    return this.simple("boolean");
  }

  /** Any JSON string. */
  get string(): string {
    return this.named("string", () => `"\\"" ${this.char}* "\\""`);
  }

  /** Any JSON value, as `{}` and `true` schemas allow. */
  get value(): string {
    const existing = this.names.get("value");
    if (existing !== undefined) return existing;
    const value = this.builder.reserve("value", "");
    this.names.set("value", value);
    const ws = this.ws;
    const member = this.builder.rule("member", `${this.string} ${ws} ":" ${ws} ${value} ${ws}`, "");
    const object = this.builder.rule("object", `"{" ${ws} (${member} ("," ${ws} ${member})*)? "}"`, "");
    const array = this.builder.rule("array", `"[" ${ws} (${value} ${ws} ("," ${ws} ${value} ${ws})*)? "]"`, "");
    this.names.set("object", object);
    const body = `${object} | ${array} | ${this.string} | ${this.number} | ${this.boolean} | "null"`;
    this.builder.define(value, body, "");
    return value;
  }

  /** Any JSON object. */
  get object(): string {
    this.value;
    return this.names.get("object") ?? "";
  }

  private simple(name: SimpleRule): string {
    return this.named(name, () => BODIES[name]);
  }

  private named(name: string, body: () => string): string {
    const existing = this.names.get(name);
    if (existing !== undefined) return existing;
    const ruleName = this.builder.rule(name, body(), "");
    this.names.set(name, ruleName);
    return ruleName;
  }
}
