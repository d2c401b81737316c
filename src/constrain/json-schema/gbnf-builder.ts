/**
 * Collects the rules of one grammar. Rules with the same body are shared, which keeps a schema that repeats a
 * shape (the same string bounds on twenty fields) to one rule. Every addition is counted against the limits, so
 * the grammar can never grow past them however the schema is shaped.
 */

import type { SchemaLimits } from "./limits.ts";
import { SchemaError } from "./schema-error.ts";

const RULE_NAME_MAX_CHARS = 40;

export class GbnfBuilder {
  private readonly limits: SchemaLimits;
  /** Bodies by rule name, in definition order; a reserved rule has `null` until defined. */
  private readonly bodies = new Map<string, string | null>();
  private readonly namesByBody = new Map<string, string>();
  /** Next suffix to try per base name, so naming the n-th "members" rule does not scan the n-1 before it. */
  private readonly nextSuffix = new Map<string, number>();
  private numChars = 0;
  private numExpanded = 0;

  constructor(limits: SchemaLimits) {
    this.limits = limits;
  }

  /** A rule with this body: an existing one with the same body, or a new one named after `hint`. */
  rule(hint: string, body: string, pointer: string): string {
    const existing = this.namesByBody.get(body);
    if (existing !== undefined) return existing;
    const name = this.reserve(hint, pointer);
    this.define(name, body, pointer);
    return name;
  }

  /** A fresh rule name whose body is defined later, so a recursive schema can refer to itself. */
  reserve(hint: string, pointer: string): string {
    if (this.bodies.size >= this.limits.maxRules) {
      throw new SchemaError("schema_too_large", "maxRules", pointer, `more than ${this.limits.maxRules} grammar rules`);
    }
    const base = ruleNameOf(hint);
    let name = base;
    let suffix = this.nextSuffix.get(base) ?? 2;
    while (this.bodies.has(name)) name = `${base}-${suffix++}`;
    this.nextSuffix.set(base, suffix);
    this.bodies.set(name, null);
    return name;
  }

  define(name: string, body: string, pointer: string): void {
    this.numChars += name.length + body.length + 6;
    if (this.numChars > this.limits.maxGrammarChars) {
      throw new SchemaError(
        "schema_too_large",
        "maxGrammarChars",
        pointer,
        `grammar longer than ${this.limits.maxGrammarChars} characters`,
      );
    }
    this.bodies.set(name, body);
    if (!this.namesByBody.has(body)) this.namesByBody.set(body, name);
  }

  /** Defines `root`, the grammar's start. */
  defineRoot(body: string): void {
    this.bodies.delete("root");
    this.define("root", body, "");
  }

  /** `item{min,max}` (`max` null: unbounded), with `item` made atomic first; counts llama.cpp's expansion. */
  repeat(item: string, min: number, max: number | null, hint: string, pointer: string, keyword: string): string {
    if (max === 0) return "";
    const limit = this.limits.maxRepetition;
    if (min > limit) {
      throw new SchemaError("schema_too_large", keyword, pointer, `${keyword} ${min} exceeds the limit of ${limit}`);
    }
    this.numExpanded += Math.max(min, max ?? 1);
    if (this.numExpanded > this.limits.maxExpandedRepetitions) {
      throw new SchemaError(
        "schema_too_large",
        "maxExpandedRepetitions",
        pointer,
        `repetitions expand to more than ${this.limits.maxExpandedRepetitions} rules`,
      );
    }
    const atom = this.atom(item, hint, pointer);
    if (max === null) return min === 0 ? `${atom}*` : min === 1 ? `${atom}+` : `${atom}{${min},}`;
    if (min === max) return min === 1 ? atom : `${atom}{${min}}`;
    if (min === 0 && max === 1) return `${atom}?`;
    return `${atom}{${min},${max}}`;
  }

  /**
   * `expr` as one symbol. llama.cpp multiplies the rule counts of a repeated group with its repetition, so anything
   * but a literal, a class or a rule name becomes a rule before it is repeated.
   */
  atom(expr: string, hint: string, pointer: string): string {
    return isAtomic(expr) ? expr : this.rule(hint, expr, pointer);
  }

  /** The grammar text, `root` first. */
  format(): string {
    const lines: string[] = [];
    const root = this.bodies.get("root");
    if (root !== undefined && root !== null) lines.push(`root ::= ${root}`);
    for (const [name, body] of this.bodies) {
      if (name !== "root" && body !== null) lines.push(`${name} ::= ${body}`);
    }
    return `${lines.join("\n")}\n`;
  }
}

/** `expr` wrapped in parentheses unless it is already one symbol. */
export function grouped(expr: string): string {
  return isAtomic(expr) ? expr : `(${expr})`;
}

/** Alternatives of `exprs`, without duplicates; an empty list has no alternative and is a bug in the caller. */
export function alternatives(exprs: readonly string[]): string {
  const unique = [...new Set(exprs)];
  return unique.length === 1
    ? (unique[0] ?? "")
    : unique.map((e) => (hasTopLevelAlternation(e) ? `(${e})` : e)).join(" | ");
}

/** A sequence of expressions, each grouped if it has top-level alternatives. */
export function sequence(exprs: readonly string[]): string {
  return exprs
    .filter((e) => e !== "")
    .map((e) => (hasTopLevelAlternation(e) ? `(${e})` : e))
    .join(" ");
}

/** A GBNF string literal: quotes, backslashes and control characters escaped, the rest as UTF-8. */
export function gbnfLiteral(text: string): string {
  let literal = '"';
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (char === '"' || char === "\\") literal += `\\${char}`;
    else if (char === "\n") literal += "\\n";
    else if (char === "\r") literal += "\\r";
    else if (char === "\t") literal += "\\t";
    else if (code < 0x20 || code === 0x7f || (code >= 0xd800 && code <= 0xdfff)) literal += escapeCodePoint(code);
    else literal += char;
  }
  return `${literal}"`;
}

/** One code point inside a GBNF character class: ASCII letters and digits as they are, the rest escaped. */
export function classChar(code: number): string {
  if ((code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)) {
    return String.fromCharCode(code);
  }
  return escapeCodePoint(code);
}

function escapeCodePoint(code: number): string {
  if (code <= 0xff) return `\\x${hex(code, 2)}`;
  if (code <= 0xffff) return `\\u${hex(code, 4)}`;
  return `\\U${hex(code, 8)}`;
}

function hex(value: number, width: number): string {
  return value.toString(16).toUpperCase().padStart(width, "0");
}

function ruleNameOf(hint: string): string {
  const name = hint
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, RULE_NAME_MAX_CHARS)
    .replace(/-+$/, "");
  return name === "" || name === "root" ? "r" : name;
}

/** A single literal, class, rule name or parenthesised group, possibly with one quantifier. */
function isAtomic(expr: string): boolean {
  if (/^[a-z0-9-]+$/.test(expr)) return true;
  if (/^"(?:[^"\\]|\\.)*"$/.test(expr)) return true;
  if (/^\[(?:[^\]\\]|\\.)*\]$/.test(expr)) return true;
  return false;
}

function hasTopLevelAlternation(expr: string): boolean {
  let depth = 0;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === "\\") {
      i++;
    } else if (c === '"') {
      for (i++; i < expr.length && expr[i] !== '"'; i++) if (expr[i] === "\\") i++;
    } else if (c === "[") {
      for (i++; i < expr.length && expr[i] !== "]"; i++) if (expr[i] === "\\") i++;
    } else if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "|" && depth === 0) return true;
  }
  return false;
}
