/**
 * What a chat request's `tools`, `tool_choice` and `parallel_tool_calls` ask for, checked before it is queued: the
 * call syntax (the template's own, or pagoda's generic JSON when a call is forced on a template without one), the
 * grammar that forces a call (`required`, a named function) or starts at the syntax's trigger (`auto`), and the
 * tool names the output parser accepts. Every refusal is a 400 naming the field.
 */
import { createHash } from "node:crypto";
import type { ChatTool, GrammarConstraint, GrammarTrigger, ServerEngine } from "../engine/engine.ts";
import type { ToolChoiceKind } from "../metrics/pagoda-metrics.ts";
import {
  buildToolGrammar,
  checkToolParameters,
  GENERIC_SYNTAX,
  TOOL_CALL_SYNTAXES,
  type ToolCallSyntax,
  type ToolDefinition,
  ToolError,
  type ToolGrammar,
  type ToolGrammarChoice,
} from "../tools/index.ts";
import { PagodaError } from "./errors.ts";
import type { ChatCompletionRequest } from "./schemas.ts";

export interface ToolRequest {
  readonly syntax: ToolCallSyntax;
  readonly choiceKind: ToolChoiceKind;
  /** Offered to the template; empty when the generic syntax's prompt describes them instead. */
  readonly tools: readonly ChatTool[];
  readonly definitions: readonly ToolDefinition[];
  readonly toolNames: readonly string[];
  /** The whole output is calls: `required` or a named function. */
  readonly grammar: GrammarConstraint | null;
  /** `auto`: free text until a call starts. */
  readonly grammarTriggers: readonly GrammarTrigger[] | null;
}

/** Built grammars by request shape, so an agent sending the same tools every turn compiles them once. */
const GRAMMAR_CACHE_SIZE = 64;
const grammarCache = new Map<string, ToolGrammar | ToolError>();

/** Null when the request offers no tools or `tool_choice` is `none`: it is an ordinary chat request. */
export function resolveToolRequest(body: ChatCompletionRequest, engine: ServerEngine): ToolRequest | null {
  const tools = body.tools ?? [];
  const choiceField = body.tool_choice ?? null;
  if (tools.length === 0) {
    if (choiceField !== null && choiceField !== "none" && choiceField !== "auto") {
      throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "tool_choice needs tools", { param: "tool_choice" });
    }
    return null;
  }
  if (choiceField === "none") return null;
  const definitions = tools.map((tool, index): ToolDefinition => {
    if (tool.type !== "function") {
      throw new PagodaError(
        "PAGODA_ERR_UNSUPPORTED",
        `tools of type "${tool.type}" are not supported; only function tools are`,
        { param: `tools[${index}].type` },
      );
    }
    if (tool.function === undefined) {
      throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "a function tool needs its function", {
        param: `tools[${index}].function`,
      });
    }
    const { name, description, parameters, strict } = tool.function;
    return { name, ...(description == null ? {} : { description }), parameters, strict: strict ?? null };
  });
  const choice: ToolGrammarChoice =
    choiceField === null || choiceField === "auto"
      ? "auto"
      : choiceField === "required"
        ? "required"
        : { name: choiceField.function.name };
  const templateSyntax = engine.info.toolSyntax;
  if (choice === "auto" && templateSyntax === null) {
    throw new PagodaError(
      "PAGODA_ERR_UNSUPPORTED",
      'tool_choice "auto" needs a chat template with a tool-call syntax, which this model\'s lacks; use ' +
        '"required" or a named function, or start the server with --chat-template',
      { param: "tool_choice" },
    );
  }
  const syntax = templateSyntax === null ? GENERIC_SYNTAX : TOOL_CALL_SYNTAXES[templateSyntax];
  const built = cachedToolGrammar(definitions, syntax, choice, body.parallel_tool_calls ?? true);
  const request = {
    syntax,
    choiceKind: typeof choice === "object" ? ("named" as const) : choice,
    tools: templateSyntax === null ? [] : definitions.map(toChatTool),
    definitions,
    toolNames: definitions.map((definition) => definition.name),
  };
  if (built.kind === "full") {
    const grammar = { gbnf: built.grammar };
    prepare(engine, grammar);
    return { ...request, grammar, grammarTriggers: null };
  }
  const grammarTriggers = built.triggers.map((trigger) => {
    const grammar = { gbnf: trigger.grammar };
    prepare(engine, grammar);
    return { text: trigger.trigger, isAtStartOnly: trigger.isAtStartOnly, grammar };
  });
  return { ...request, grammar: null, grammarTriggers };
}

function cachedToolGrammar(
  definitions: readonly ToolDefinition[],
  syntax: ToolCallSyntax,
  choice: ToolGrammarChoice,
  isParallel: boolean,
): ToolGrammar {
  try {
    checkToolParameters(definitions);
  } catch (error) {
    throw error instanceof ToolError ? toPagodaError(error) : error;
  }
  const key = createHash("sha256")
    .update(JSON.stringify({ definitions, syntax: syntax.name, choice, isParallel }))
    .digest("hex");
  let built = grammarCache.get(key);
  if (built === undefined) {
    try {
      built = buildToolGrammar(definitions, syntax, choice, { isParallel });
    } catch (error) {
      if (!(error instanceof ToolError)) throw error;
      built = error;
    }
    grammarCache.set(key, built);
    if (grammarCache.size > GRAMMAR_CACHE_SIZE) grammarCache.delete(grammarCache.keys().next().value ?? "");
  }
  if (built instanceof ToolError) throw toPagodaError(built);
  return built;
}

/** A schema refusal says which keyword and where, as the constraint fields' refusals do. */
function toPagodaError(error: ToolError): PagodaError {
  const isSchemaRefusal =
    error.code === "PAGODA_ERR_TOOL_INVALID_PARAMETERS" ||
    error.code === "PAGODA_ERR_TOOL_UNSUPPORTED_SCHEMA" ||
    error.code === "PAGODA_ERR_TOOL_LIMIT";
  const where =
    error.keyword === null || error.message.includes(`keyword "${error.keyword}"`)
      ? ""
      : ` (keyword "${error.keyword}"${error.pointer === null || error.pointer === "" ? "" : ` at ${error.pointer}`})`;
  return new PagodaError(
    isSchemaRefusal ? "PAGODA_ERR_INVALID_CONSTRAINT" : "PAGODA_ERR_INVALID_REQUEST",
    `${error.message}${where}`,
    { param: error.param, cause: error },
  );
}

function prepare(engine: ServerEngine, grammar: GrammarConstraint): void {
  try {
    engine.prepareGrammar(grammar);
  } catch (error) {
    throw new PagodaError("PAGODA_ERR_INVALID_CONSTRAINT", "tools: the engine could not load the tools' grammar", {
      param: "tools",
      cause: error,
    });
  }
}

function toChatTool(definition: ToolDefinition): ChatTool {
  return {
    name: definition.name,
    ...(definition.description === undefined ? {} : { description: definition.description }),
    ...(definition.parameters === undefined ? {} : { parameters: definition.parameters }),
  };
}
