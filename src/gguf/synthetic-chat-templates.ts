/**
 * Chat templates a synthetic model can carry: plain ChatML, or ChatML with tool calling in one of the two call
 * syntaxes open models use, so tool calling can be tested end to end without downloading a real model.
 *
 * node-llama-cpp learns a template's call syntax by rendering probe histories through it
 * (extractFunctionCallSettingsFromJinjaTemplate), so the tool templates must hold to what those probes pass:
 * `tools` is a list of `{type: "function", function: {name, description, parameters}}`; an assistant message's
 * `tool_calls[i].function.arguments` is a mapping, a number or an already serialized string, and its `content` may
 * be missing; a `tool` message's `content` may be a mapping. Every call must be rendered (a template that drops
 * one teaches node-llama-cpp nothing), and the text between a call's name and its arguments must not depend on
 * the message's content.
 */
import { SYNTHETIC_CHAT_TEMPLATE } from "./synthetic-vocabulary.ts";

export const SYNTHETIC_CHAT_TEMPLATES = ["chatml", "hermes-tools", "llama3-tools"] as const;
export type SyntheticChatTemplate = (typeof SYNTHETIC_CHAT_TEMPLATES)[number];

/** Hermes-style call markers; the vocabulary holds them as single user-defined tokens. */
export const TOOL_CALL_TOKENS = ["<tool_call>", "</tool_call>"] as const;

/** A system message rendered first by the tool templates, which put the tool list into that turn. */
const LEADING_SYSTEM = "messages | length > 0 and messages[0].role == 'system'";

/** Mappings (and the numbers node-llama-cpp probes with) as JSON, strings as they are: already JSON. */
function asJson(expression: string): string {
  return (
    `{%- if ${expression} is string %}{{- ${expression} }}` + `{%- else %}{{- ${expression} | tojson }}{%- endif %}`
  );
}

/** A user, system or plain assistant turn; `message.content` is left out when missing. */
const PLAIN_TURN =
  "{{- '<|im_start|>' + message.role + '\\n' }}{%- if message.content %}{{- message.content }}{%- endif %}" +
  "{{- '<|im_end|>\\n' }}";

const GENERATION_PROMPT = "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/**
 * Qwen2.5 / Hermes style: the tools as JSON lines inside <tools></tools> in the system turn, each call as its own
 * <tool_call> block (several per assistant turn), and consecutive tool results sharing one user turn.
 */
const HERMES_TOOLS_TEMPLATE = [
  "{%- if tools %}",
  "{{- '<|im_start|>system\\n' }}",
  `{%- if ${LEADING_SYSTEM} %}{{- messages[0].content }}{{- '\\n\\n' }}{%- endif %}`,
  "{{- 'Functions you can call are listed below as JSON schemas, between <tools> and </tools>:\\n<tools>' }}",
  "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}",
  "{{- '\\n</tools>\\n\\nTo call functions, reply with one block per call, each holding a JSON object with the " +
    'function name and its arguments:\\n<tool_call>\\n{"name": <function-name>, "arguments": ' +
    "<args-json-object>}\\n</tool_call><|im_end|>\\n' }}",
  `{%- elif ${LEADING_SYSTEM} %}`,
  "{{- '<|im_start|>system\\n' }}{{- messages[0].content }}{{- '<|im_end|>\\n' }}",
  "{%- endif %}",
  "{%- for message in messages %}",
  "{%- if message.role == 'system' and loop.first %}",
  "{%- elif message.role == 'assistant' and message.tool_calls %}",
  "{{- '<|im_start|>assistant' }}",
  "{%- if message.content %}{{- '\\n' }}{{- message.content }}{%- endif %}",
  "{%- for tool_call in message.tool_calls %}",
  "{%- set call = tool_call.function if tool_call.function is defined else tool_call %}",
  `{{- '\\n<tool_call>\\n{"name": "' }}{{- call.name }}{{- '", "arguments": ' }}`,
  asJson("call.arguments"),
  "{{- '}\\n</tool_call>' }}",
  "{%- endfor %}",
  "{{- '<|im_end|>\\n' }}",
  "{%- elif message.role == 'tool' %}",
  "{%- if loop.first or loop.previtem.role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}",
  "{{- '\\n<tool_response>\\n' }}",
  asJson("message.content"),
  "{{- '\\n</tool_response>' }}",
  "{%- if loop.last or loop.nextitem.role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}",
  "{%- else %}",
  PLAIN_TURN,
  "{%- endif %}",
  "{%- endfor %}",
  GENERATION_PROMPT,
].join("");

/**
 * Llama 3.1 style JSON calls: the tools as JSON in the system turn, and a call answered as one bare
 * `{"name": …, "parameters": …}` right after any text, one call per assistant turn (as Llama 3.1 allows only one,
 * a turn with more is an error, and node-llama-cpp then renders the calls itself). Results go in an `ipython` turn.
 * Turns keep the ChatML markers: the vocabulary has no Llama 3 header tokens, and only the call syntax matters here.
 */
const LLAMA3_TOOLS_TEMPLATE = [
  "{%- if tools %}",
  "{{- '<|im_start|>system\\n' }}",
  `{%- if ${LEADING_SYSTEM} %}{{- messages[0].content }}{{- '\\n\\n' }}{%- endif %}`,
  "{{- 'These functions are available, each described by a JSON schema. To call one, answer with only a JSON " +
    'object of the form {"name": function name, "parameters": object of argument names and values}, using ' +
    "literal values rather than variables.\\n\\n' }}",
  "{%- for tool in tools %}{{- tool | tojson }}{{- '\\n\\n' }}{%- endfor %}",
  "{{- '<|im_end|>\\n' }}",
  `{%- elif ${LEADING_SYSTEM} %}`,
  "{{- '<|im_start|>system\\n' }}{{- messages[0].content }}{{- '<|im_end|>\\n' }}",
  "{%- endif %}",
  "{%- for message in messages %}",
  "{%- if message.role == 'system' and loop.first %}",
  "{%- elif message.role == 'assistant' and message.tool_calls %}",
  "{%- if message.tool_calls | length != 1 %}",
  "{{- raise_exception('This template renders exactly one tool call per assistant message.') }}",
  "{%- endif %}",
  "{%- set tool_call = message.tool_calls[0] %}",
  "{%- set call = tool_call.function if tool_call.function is defined else tool_call %}",
  "{{- '<|im_start|>assistant\\n' }}",
  "{%- if message.content %}{{- message.content }}{%- endif %}",
  `{{- '{"name": "' }}{{- call.name }}{{- '", "parameters": ' }}`,
  asJson("call.arguments"),
  "{{- '}<|im_end|>\\n' }}",
  "{%- elif message.role == 'tool' or message.role == 'ipython' %}",
  "{{- '<|im_start|>ipython\\n' }}",
  asJson("message.content"),
  "{{- '<|im_end|>\\n' }}",
  "{%- else %}",
  PLAIN_TURN,
  "{%- endif %}",
  "{%- endfor %}",
  GENERATION_PROMPT,
].join("");

const TEMPLATES: Readonly<Record<SyntheticChatTemplate, { text: string; userDefinedTokens: readonly string[] }>> = {
  chatml: { text: SYNTHETIC_CHAT_TEMPLATE, userDefinedTokens: [] },
  "hermes-tools": { text: HERMES_TOOLS_TEMPLATE, userDefinedTokens: TOOL_CALL_TOKENS },
  "llama3-tools": { text: LLAMA3_TOOLS_TEMPLATE, userDefinedTokens: [] },
};

/** The Jinja text of a template and the tokens it needs in the vocabulary besides the chat markers. */
export function syntheticChatTemplate(name: SyntheticChatTemplate): {
  text: string;
  userDefinedTokens: readonly string[];
} {
  const template = Object.hasOwn(TEMPLATES, name) ? TEMPLATES[name] : undefined;
  if (template === undefined) throw new RangeError(`unsupported chatTemplate ${String(name)}`);
  return template;
}
