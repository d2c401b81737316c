/**
 * How a model family writes tool calls, as its chat template teaches it: what starts a call (the trigger), the
 * JSON shape of one call, what surrounds and separates calls. The parser reads any of these shapes leniently
 * (either key order, `arguments` or `parameters`, any JSON whitespace); the grammars write exactly the template's
 * spelling, so a constrained model stays on the text it was trained on.
 */

export type ToolCallSyntaxName = "hermes" | "llama3" | "generic";

export interface ToolCallTrigger {
  /** Text that starts a call. Whitespace just before it belongs to it: it is never content. */
  readonly text: string;
  /** Counts only at the start of the output, after optional whitespace. */
  readonly isAtStartOnly: boolean;
  /**
   * The trigger is the opening `{` of the call's JSON (or of the wrapper's). Such a start is tentative: it becomes
   * a call only once the object's first key is one of the syntax's `commitKeys`; any other object is content.
   */
  readonly isJsonStart: boolean;
}

/** A trigger for grammar-constrained `auto`: once it appears in free text, the call grammar applies. */
export interface LazyTrigger {
  readonly text: string;
  readonly isAtStartOnly: boolean;
  /** The trigger is the first characters of the constrained output, so the grammar covers only what follows it. */
  readonly isOutputPrefix: boolean;
}

export interface ToolCallSyntax {
  readonly name: ToolCallSyntaxName;
  /** What the parser treats as the start of a call. */
  readonly triggers: readonly ToolCallTrigger[];
  /** First keys that commit a tentative JSON start (`isJsonStart`) to being a call. */
  readonly commitKeys: readonly string[];
  /** Text after each call's JSON, e.g. `</tool_call>`; null when the JSON's end is the call's end. */
  readonly closeTag: string | null;
  /** Calls are the elements of `{"tool_calls": [...]}` rather than bare objects. */
  readonly isWrapped: boolean;
  /** The key under which the grammar writes arguments (the parser accepts `arguments` and `parameters`). */
  readonly argumentsKey: "arguments" | "parameters";
  /** Literal text the grammar writes around the calls. */
  readonly outputOpen: string;
  readonly outputClose: string;
  readonly callOpen: string;
  readonly callClose: string;
  readonly callSeparator: string;
  /** Whether the template can express more than one call in one message. */
  readonly canCallInParallel: boolean;
  readonly lazyTriggers: readonly LazyTrigger[];
}

/**
 * Qwen2.5, QwQ, Hermes 2/3 and most fine-tunes of their templates:
 *
 * ```
 * Let me look that up.
 * <tool_call>
 * {"name": "get_weather", "arguments": {"city": "Paris"}}
 * </tool_call>
 * <tool_call>
 * {"name": "get_time", "arguments": {"tz": "Europe/Paris"}}
 * </tool_call>
 * ```
 *
 * Text before the first `<tool_call>` is content; several blocks are parallel calls. Hermes 2 Pro's system prompt
 * puts `arguments` before `name`, which the parser accepts. A missing `</tool_call>` at the very end of the output
 * (a model that stops right after the JSON) is accepted.
 */
export const HERMES_SYNTAX: ToolCallSyntax = {
  name: "hermes",
  triggers: [{ text: "<tool_call>", isAtStartOnly: false, isJsonStart: false }],
  commitKeys: [],
  closeTag: "</tool_call>",
  isWrapped: false,
  argumentsKey: "arguments",
  outputOpen: "",
  outputClose: "",
  callOpen: "<tool_call>\n",
  callClose: "\n</tool_call>",
  callSeparator: "\n",
  canCallInParallel: true,
  lazyTriggers: [{ text: "<tool_call>", isAtStartOnly: false, isOutputPrefix: true }],
};

/**
 * Llama 3.1, 3.2 and 3.3 with JSON ("custom") tools: the whole message is one call,
 * `{"name": "get_weather", "parameters": {"city": "Paris"}}`, sometimes after `<|python_tag|>` (a special token
 * that reaches us as text only when the detokenizer renders specials). A message that starts with an object whose
 * first key is not `name` (or `type`, as in `{"type": "function", "name": ...}`) is an ordinary JSON answer, so it is
 * content. The built-in tools' Python syntax (`brave_search.call(query="…")`) is not supported.
 */
export const LLAMA3_SYNTAX: ToolCallSyntax = {
  name: "llama3",
  triggers: [
    { text: "<|python_tag|>", isAtStartOnly: false, isJsonStart: false },
    { text: "{", isAtStartOnly: true, isJsonStart: true },
  ],
  commitKeys: ["name", "type"],
  closeTag: null,
  isWrapped: false,
  argumentsKey: "parameters",
  outputOpen: "",
  outputClose: "",
  callOpen: "",
  callClose: "",
  callSeparator: "",
  canCallInParallel: false,
  lazyTriggers: [
    { text: '{"name": "', isAtStartOnly: true, isOutputPrefix: true },
    { text: "<|python_tag|>", isAtStartOnly: false, isOutputPrefix: false },
  ],
};

/**
 * pagoda's own format for templates with no tool syntax, used only when a call is forced (`required` or a named
 * choice), so the grammar, not the template, teaches it:
 *
 * ```
 * {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {}}]}
 * ```
 *
 * The output is exactly this one object; no content.
 */
export const GENERIC_SYNTAX: ToolCallSyntax = {
  name: "generic",
  triggers: [{ text: "{", isAtStartOnly: true, isJsonStart: true }],
  commitKeys: ["tool_calls"],
  closeTag: null,
  isWrapped: true,
  argumentsKey: "arguments",
  outputOpen: '{"tool_calls": [',
  outputClose: "]}",
  callOpen: "",
  callClose: "",
  callSeparator: ", ",
  canCallInParallel: true,
  lazyTriggers: [{ text: '{"tool_calls": [', isAtStartOnly: true, isOutputPrefix: true }],
};

export const TOOL_CALL_SYNTAXES: Readonly<Record<ToolCallSyntaxName, ToolCallSyntax>> = {
  hermes: HERMES_SYNTAX,
  llama3: LLAMA3_SYNTAX,
  generic: GENERIC_SYNTAX,
};
