/**
 * A function tool as a request declares it (OpenAI's `tools[i].function`), and the checks every use of a tool list
 * shares: names as OpenAI allows them, no duplicates, a bounded count.
 */
import { ToolError } from "./tool-error.ts";

export interface ToolDefinition {
  readonly name: string;
  readonly description?: string;
  /** A JSON schema for the arguments object. Omitted means the function takes no arguments. */
  readonly parameters?: unknown;
  /** OpenAI's structured-outputs flag: the arguments must follow `parameters` exactly. */
  readonly strict?: boolean | null;
}

/** OpenAI's rule for function names; it also keeps names safe inside JSON strings and GBNF literals. */
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

/** OpenAI's own limit on functions per request. */
export const DEFAULT_MAX_TOOLS = 128;

/** Throws `ToolError` for a bad name, a repeated name, or more than `maxTools` tools. */
export function validateToolDefinitions(tools: readonly ToolDefinition[], maxTools = DEFAULT_MAX_TOOLS): void {
  if (tools.length > maxTools) {
    throw new ToolError("PAGODA_ERR_TOOL_LIMIT", `${tools.length} tools is more than the limit of ${maxTools}`, {
      param: "tools",
    });
  }
  const seen = new Set<string>();
  tools.forEach((tool, index) => {
    const param = `tools[${index}].function.name`;
    if (typeof tool.name !== "string" || !TOOL_NAME_PATTERN.test(tool.name)) {
      throw new ToolError(
        "PAGODA_ERR_TOOL_INVALID_NAME",
        `${JSON.stringify(tool.name)} is not a valid function name: use 1 to 64 of a-z, A-Z, 0-9, _ and -`,
        { param },
      );
    }
    if (seen.has(tool.name)) {
      throw new ToolError("PAGODA_ERR_TOOL_DUPLICATE_NAME", `function name "${tool.name}" is used twice`, { param });
    }
    seen.add(tool.name);
  });
}
