/**
 * JSONSchemaBench through a real model: each schema is sent as `json_schema` to a listening server, and the answer
 * is a 400 naming what pagoda refused, or a completion whose finished output parses and validates with ajv. Shared
 * by the model test (a sample) and bench/schema-generation.ts (whole splits).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { compileValidator } from "./schema-soundness.ts";

export interface GenerationTally {
  readonly numSchemas: number;
  /** 400 invalid_constraint. */
  readonly numRefused: number;
  /** Finished with "stop", parsed and validated (or ajv could not compile the schema: counted apart). */
  readonly numValid: number;
  /** Finished with "stop" but ajv cannot compile the schema, so only parsing was checked. */
  readonly numUnchecked: number;
  /** Ran into max_tokens before the grammar completed. */
  readonly numLength: number;
  /** Finished with "stop" and did not parse or validate: must stay empty. */
  readonly invalid: readonly string[];
  /** Any other answer (a 5xx, a 400 of another kind, a refusal without keyword and pointer): must stay empty. */
  readonly failures: readonly string[];
  readonly durationMs: number;
}

export interface GenerationOptions {
  readonly baseUrl: string;
  readonly maxTokens: number;
  /** Requests in flight at once. */
  readonly concurrency: number;
  readonly prompt?: string;
  /**
   * Send each schema as a tool's `parameters` with a named `tool_choice` on /v1/chat/completions, and validate the
   * call's arguments, instead of `json_schema` on /v1/completions.
   */
  readonly asTool?: boolean;
}

interface Answer {
  readonly status: number;
  readonly error?: { message: string; code: string | null };
  /** The generated JSON text, and whether the output ended by itself. */
  readonly text?: string;
  readonly isFinished?: boolean;
}

/** One schema's request, as `json_schema` or as a tool. */
async function ask(schema: unknown, name: string, options: GenerationOptions): Promise<Answer> {
  if (options.asTool !== true) {
    const response = await fetch(`${options.baseUrl}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        prompt: options.prompt ?? "Here is the answer as JSON:",
        max_tokens: options.maxTokens,
        temperature: 0,
        json_schema: schema,
      }),
    });
    const body = (await response.json()) as {
      error?: { message: string; code: string | null };
      choices?: { text: string; finish_reason: string }[];
    };
    const choice = body.choices?.[0];
    return {
      status: response.status,
      ...(body.error === undefined ? {} : { error: body.error }),
      ...(choice === undefined ? {} : { text: choice.text, isFinished: choice.finish_reason === "stop" }),
    };
  }
  const toolName = name
    .replace(/\.json$/, "")
    .replace(/[^a-zA-Z0-9_-]/g, "_")
    .slice(0, 64);
  const response = await fetch(`${options.baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      messages: [{ role: "user", content: options.prompt ?? "Call the function." }],
      tools: [{ type: "function", function: { name: toolName, parameters: schema } }],
      tool_choice: { type: "function", function: { name: toolName } },
      parallel_tool_calls: false,
      max_tokens: options.maxTokens,
      temperature: 0,
    }),
  });
  const body = (await response.json()) as {
    error?: { message: string; code: string | null };
    choices?: { message: { tool_calls?: { function: { arguments: string } }[] }; finish_reason: string }[];
  };
  const choice = body.choices?.[0];
  const calls = choice?.message.tool_calls ?? [];
  return {
    status: response.status,
    ...(body.error === undefined ? {} : { error: body.error }),
    ...(choice === undefined
      ? {}
      : {
          text: calls[0]?.function.arguments ?? "",
          isFinished: choice.finish_reason === "tool_calls" && calls.length === 1,
        }),
  };
}

/** Sends every schema file and tallies the answers. */
export async function generateForSchemas(
  files: readonly string[],
  options: GenerationOptions,
): Promise<GenerationTally> {
  const startMs = performance.now();
  let numRefused = 0;
  let numValid = 0;
  let numUnchecked = 0;
  let numLength = 0;
  const invalid: string[] = [];
  const failures: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++]!;
      const name = path.basename(file);
      const schema: unknown = JSON.parse(readFileSync(file, "utf8"));
      const answer = await ask(schema, name, options);
      if (answer.status === 400 && answer.error?.code === "invalid_constraint") {
        // A refusal names what it refused: a keyword and where, or the limit it hit.
        if (/(keyword "[^"]+"|too large \([^)]+\)|unresolvable "[^"]+") at \//.test(answer.error.message)) numRefused++;
        else failures.push(`${name}: refusal without a place: ${answer.error.message}`);
        continue;
      }
      if (answer.status !== 200 || answer.text === undefined) {
        failures.push(`${name}: HTTP ${answer.status} ${JSON.stringify(answer.error).slice(0, 300)}`);
        continue;
      }
      if (answer.isFinished !== true) {
        numLength++;
        continue;
      }
      const choice = { text: answer.text };
      let value: unknown;
      try {
        value = JSON.parse(choice.text);
      } catch (error) {
        invalid.push(`${name}: not JSON (${(error as Error).message}): ${choice.text.slice(0, 200)}`);
        continue;
      }
      const validate = compileValidator(schema);
      if (validate === null) numUnchecked++;
      else if (validate(value)) numValid++;
      else invalid.push(`${name}: ${JSON.stringify(validate.errors).slice(0, 300)}: ${choice.text.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return {
    numSchemas: files.length,
    numRefused,
    numValid,
    numUnchecked,
    numLength,
    invalid,
    failures,
    durationMs: performance.now() - startMs,
  };
}
