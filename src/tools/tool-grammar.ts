/**
 * GBNF for `tool_choice`: for a named function, the whole output is one call to it; for `required`, one call (or,
 * with `parallel_tool_calls`, one to `maxCalls` calls) written exactly as the syntax's template writes it, each call's
 * arguments constrained by its tool's `parameters` through `jsonSchemaToGbnf`; for `auto`, lazy grammars that take
 * over from a trigger on, leaving the text before it free.
 *
 * Like the schema converter, this never loosens: parameters the converter cannot enforce exactly are refused with
 * a `ToolError` naming the tool, the keyword and where it is. Every input is bounded (tool count, each schema by
 * the converter's limits, the combined grammar by `maxGrammarChars` and `maxRules`), so any request is answered
 * or refused in bounded time.
 */
import { GrammarError, parseGbnf } from "../constrain/gbnf/index.ts";
import {
  checkSchemaDocument,
  DEFAULT_SCHEMA_LIMITS,
  jsonSchemaToGbnf,
  SchemaError,
  type SchemaLimits,
} from "../constrain/json-schema/index.ts";
import type { ToolCallSyntax } from "./call-syntax.ts";
import { GbnfRuleSet } from "./gbnf-rule-set.ts";
import { DEFAULT_MAX_TOOLS, type ToolDefinition, validateToolDefinitions } from "./tool-definition.ts";
import { ToolError, type ToolErrorCode } from "./tool-error.ts";

export type ToolGrammarChoice = "auto" | "required" | { readonly name: string };

export interface ToolGrammarOptions {
  /** `parallel_tool_calls`: allow more than one call. Defaults to true, as OpenAI. Moot for one-call syntaxes. */
  readonly isParallel?: boolean;
  /** Most calls in one output when parallel. Defaults to 16. */
  readonly maxCalls?: number;
  /** Most tools in a request. Defaults to 128, OpenAI's limit. */
  readonly maxTools?: number;
  /** Characters of the combined grammar. Defaults to 250,000, within pagoda's GBNF parser's 256 KiB. */
  readonly maxGrammarChars?: number;
  /** Rules in the combined grammar. Defaults to 4,000, within pagoda's GBNF parser's 4,096. */
  readonly maxRules?: number;
}

/** For `auto`: once `trigger` appears in the free text (at the very start only, if so marked), `grammar` applies. */
export interface LazyToolGrammar {
  readonly trigger: string;
  readonly isAtStartOnly: boolean;
  /** GBNF, `root` rule, for the output after the trigger. */
  readonly grammar: string;
}

export type ToolGrammar =
  | { readonly kind: "full"; readonly grammar: string }
  | { readonly kind: "lazy"; readonly triggers: readonly LazyToolGrammar[] };

export const DEFAULT_MAX_CALLS = 16;
export const DEFAULT_MAX_TOOL_GRAMMAR_CHARS = 250_000;
export const DEFAULT_MAX_TOOL_GRAMMAR_RULES = 4_000;

/** Rules and characters of the call scaffolding (root, call, call-rest) apart from per-tool text. */
const SCAFFOLD_RULES = 3;
const SCAFFOLD_CHARS = 512;
/**
 * The converter's work and schema-size limits are split this many ways across a request's tools, so the whole tool
 * list costs at most about twice what one schema may cost alone; a schema rich enough to need more is refused with
 * `PAGODA_ERR_TOOL_LIMIT` only when it comes with many other tools.
 */
const WORK_SHARES = 64;

/** Throws `ToolError`. */
export function buildToolGrammar(
  tools: readonly ToolDefinition[],
  syntax: ToolCallSyntax,
  choice: ToolGrammarChoice,
  options: ToolGrammarOptions = {},
): ToolGrammar {
  validateToolDefinitions(tools, options.maxTools ?? DEFAULT_MAX_TOOLS);
  const maxChars = options.maxGrammarChars ?? DEFAULT_MAX_TOOL_GRAMMAR_CHARS;
  const maxRules = options.maxRules ?? DEFAULT_MAX_TOOL_GRAMMAR_RULES;
  const selected = selectTools(tools, choice);
  // A named choice asks for that call, once, as OpenAI and vLLM answer it.
  const maxCalls =
    typeof choice === "object" || options.isParallel === false || !syntax.canCallInParallel
      ? 1
      : (options.maxCalls ?? DEFAULT_MAX_CALLS);
  if (!Number.isSafeInteger(maxCalls) || maxCalls < 1) throw new RangeError(`maxCalls must be a positive integer`);

  const ruleSet = new GbnfRuleSet();
  const alternatives: string[] = [];
  for (const { tool, index } of selected) {
    const param = `tools[${index}].function.parameters`;
    const budget = {
      maxGrammarChars: maxChars - SCAFFOLD_CHARS - ruleSet.rules.length,
      maxRules: maxRules - SCAFFOLD_RULES - ruleSet.numRules,
      // One request's tools share the work one schema may do alone, so many tools cost no more than one.
      maxWork: Math.floor(DEFAULT_SCHEMA_LIMITS.maxWork / Math.min(selected.length, WORK_SHARES)),
      maxSchemaNodes: Math.floor(DEFAULT_SCHEMA_LIMITS.maxSchemaNodes / Math.min(selected.length, WORK_SHARES)),
    };
    if (budget.maxGrammarChars < 1) throw tooLarge(param, "maxGrammarChars", maxChars);
    if (budget.maxRules < 1) throw tooLarge(param, "maxRules", maxRules);
    const rootName = ruleSet.add(compileParameters(tool.parameters, param, budget), `p${alternatives.length}-`);
    if (ruleSet.rules.length + SCAFFOLD_CHARS > maxChars) throw tooLarge(param, "maxGrammarChars", maxChars);
    if (ruleSet.numRules + SCAFFOLD_RULES > maxRules) throw tooLarge(param, "maxRules", maxRules);
    alternatives.push(`${gbnfLiteral(`${tool.name}", "${syntax.argumentsKey}": `)} ${rootName} "}"`);
  }
  const shared = `call ::= ${gbnfLiteral('{"name": "')} call-rest\ncall-rest ::= ${alternatives.join(" | ")}\n${ruleSet.rules}`;
  const head = `${syntax.outputOpen}${syntax.callOpen}{"name": "`;
  const grammarFrom = (consumed: string) => {
    const grammar = `root ::= ${rootBody(syntax, head.slice(consumed.length), maxCalls)}\n${shared}`;
    validate(grammar, maxChars, maxRules);
    return grammar;
  };
  if (choice !== "auto") return { kind: "full", grammar: grammarFrom("") };
  const triggers = syntax.lazyTriggers.map((trigger) => {
    if (trigger.isOutputPrefix && !head.startsWith(trigger.text)) {
      throw new Error(`the ${syntax.name} trigger ${JSON.stringify(trigger.text)} does not begin its calls`);
    }
    const grammar = grammarFrom(trigger.isOutputPrefix ? trigger.text : "");
    return { trigger: trigger.text, isAtStartOnly: trigger.isAtStartOnly, grammar };
  });
  return { kind: "lazy", triggers };
}

function selectTools(
  tools: readonly ToolDefinition[],
  choice: ToolGrammarChoice,
): { readonly tool: ToolDefinition; readonly index: number }[] {
  const indexed = tools.map((tool, index) => ({ tool, index }));
  if (typeof choice === "object") {
    const named = indexed.filter(({ tool }) => tool.name === choice.name);
    if (named.length === 0) {
      throw new ToolError(
        "PAGODA_ERR_TOOL_UNKNOWN_CHOICE",
        `tool_choice names "${choice.name}", which is not in tools`,
        {
          param: "tool_choice",
        },
      );
    }
    return named;
  }
  if (indexed.length === 0) {
    throw new ToolError("PAGODA_ERR_TOOL_INVALID", `tool_choice "${choice}" needs at least one tool`, {
      param: "tools",
    });
  }
  return indexed;
}

/** The first call is spelled out so a trigger that begins it can be cut off the front: `head` is what remains. */
function rootBody(syntax: ToolCallSyntax, head: string, maxCalls: number): string {
  const parts: string[] = [];
  if (head !== "") parts.push(gbnfLiteral(head));
  parts.push("call-rest");
  if (syntax.callClose !== "") parts.push(gbnfLiteral(syntax.callClose));
  if (maxCalls > 1) {
    const next = [gbnfLiteral(syntax.callSeparator + syntax.callOpen), "call"];
    if (syntax.callClose !== "") next.push(gbnfLiteral(syntax.callClose));
    parts.push(`(${next.join(" ")}){0,${maxCalls - 1}}`);
  }
  if (syntax.outputClose !== "") parts.push(gbnfLiteral(syntax.outputClose));
  return parts.join(" ");
}

/**
 * Arguments are always an object: a schema without `type` gets `type: "object"`, one that allows other types too
 * is narrowed to objects, and one that allows no object is refused. No `parameters` means no arguments, `{}`.
 */
function compileParameters(parameters: unknown, param: string, limits: Partial<SchemaLimits>): string {
  let schema: unknown = parameters ?? { type: "object", properties: {}, additionalProperties: false };
  if (schema === true) schema = { type: "object" };
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    throw new ToolError("PAGODA_ERR_TOOL_INVALID_PARAMETERS", "parameters must be a JSON schema object", { param });
  }
  const type = (schema as { readonly type?: unknown }).type;
  if (type === undefined || (Array.isArray(type) && type.includes("object"))) schema = { ...schema, type: "object" };
  else if (type !== "object") {
    throw new ToolError("PAGODA_ERR_TOOL_INVALID_PARAMETERS", "parameters must describe a JSON object", {
      param,
      keyword: "type",
      pointer: "/type",
    });
  }
  try {
    return jsonSchemaToGbnf(schema, { limits });
  } catch (error) {
    throw toToolError(error, param);
  }
}

/**
 * Refuses a tool whose `parameters` document is too deep or too large to walk, without recursion: callers that
 * serialize the tools (to hash them for a cache) must call this first, as the constraint compiler does for schemas.
 */
export function checkToolParameters(tools: readonly ToolDefinition[]): void {
  tools.forEach((tool, index) => {
    try {
      checkSchemaDocument(tool.parameters ?? {});
    } catch (error) {
      throw toToolError(error, `tools[${index}].function.parameters`);
    }
  });
}

function toToolError(error: unknown, param: string): unknown {
  if (!(error instanceof SchemaError)) return error;
  const code: ToolErrorCode =
    error.code === "schema_too_large"
      ? "PAGODA_ERR_TOOL_LIMIT"
      : error.code === "invalid_schema"
        ? "PAGODA_ERR_TOOL_INVALID_PARAMETERS"
        : "PAGODA_ERR_TOOL_UNSUPPORTED_SCHEMA";
  return new ToolError(code, `${param}: ${error.message}`, {
    param,
    keyword: error.keyword,
    pointer: error.pointer,
    cause: error,
  });
}

function validate(grammar: string, maxChars: number, maxRules: number): void {
  try {
    parseGbnf(grammar, { maxTextLength: maxChars, maxRules });
  } catch (error) {
    if (!(error instanceof GrammarError)) throw error;
    if (error.code !== "PAGODA_ERR_GRAMMAR_LIMIT") throw error;
    throw new ToolError("PAGODA_ERR_TOOL_LIMIT", `the tools' grammar is too large: ${error.message}`, {
      param: "tools",
      keyword: error.limit,
      cause: error,
    });
  }
}

function tooLarge(param: string, limit: "maxGrammarChars" | "maxRules", value: number): ToolError {
  const what = limit === "maxGrammarChars" ? "characters" : "rules";
  return new ToolError("PAGODA_ERR_TOOL_LIMIT", `the tools' grammar would have more than ${value} ${what}`, {
    param,
    keyword: limit,
  });
}

/** A GBNF string literal for `text`, ASCII only; tool names are plain ASCII, but the syntax texts need escapes. */
function gbnfLiteral(text: string): string {
  let literal = '"';
  for (const char of text) {
    const codePoint = char.codePointAt(0)!;
    if (char === '"' || char === "\\") literal += `\\${char}`;
    else if (char === "\n") literal += "\\n";
    else if (char === "\r") literal += "\\r";
    else if (char === "\t") literal += "\\t";
    else if (codePoint >= 0x20 && codePoint < 0x7f) literal += char;
    else if (codePoint <= 0xffff) literal += `\\u${codePoint.toString(16).padStart(4, "0")}`;
    else literal += `\\U${codePoint.toString(16).padStart(8, "0")}`;
  }
  return `${literal}"`;
}
