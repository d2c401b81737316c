/** OpenAI tool calling without the engine: call syntaxes, the streaming call parser, grammars for `tool_choice`. */

export {
  GENERIC_SYNTAX,
  HERMES_SYNTAX,
  type LazyTrigger,
  LLAMA3_SYNTAX,
  TOOL_CALL_SYNTAXES,
  type ToolCallSyntax,
  type ToolCallSyntaxName,
  type ToolCallTrigger,
} from "./call-syntax.ts";
export { GbnfRuleSet } from "./gbnf-rule-set.ts";
export {
  type ParsedToolCall,
  type ToolCallEvent,
  type ToolCallParseResult,
  ToolCallParser,
  type ToolCallParserOptions,
} from "./tool-call-parser.ts";
export {
  DEFAULT_MAX_TOOLS,
  TOOL_NAME_PATTERN,
  type ToolDefinition,
  validateToolDefinitions,
} from "./tool-definition.ts";
export { ToolError, type ToolErrorCode, type ToolErrorOptions } from "./tool-error.ts";
export {
  buildToolGrammar,
  checkToolParameters,
  DEFAULT_MAX_CALLS,
  DEFAULT_MAX_TOOL_GRAMMAR_CHARS,
  DEFAULT_MAX_TOOL_GRAMMAR_RULES,
  type LazyToolGrammar,
  type ToolGrammar,
  type ToolGrammarChoice,
  type ToolGrammarOptions,
} from "./tool-grammar.ts";
