/**
 * Helpers for tool-call tests on real models: a pagoda serving a synthetic model whose chat template teaches the
 * hermes call syntax, and a reader of a chat completion stream that checks the shape pagoda promises for tool
 * calls (one delta per call header, then its argument fragments) while it puts the calls back together.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { synth } from "./gguf-files.ts";
import { type ModelServer, startModelServer } from "./model-server.ts";

/** The hermes model's id: its file name without the extension. */
export const HERMES_TOOLS_ID = "hermes-tools";

export interface ToolModelServer extends ModelServer {
  /** The id of the single `<tool_call>` token, for `logit_bias`. */
  readonly toolCallToken: number;
  /** The id of the one stop token the template's turn ends with (EOS, `</s>`, on this model), for `logit_bias`. */
  readonly endOfTurnToken: number;
}

/**
 * A listening pagoda serving a `pagoda synth --chat-template hermes-tools` model (`<tool_call>\n{"name": …,
 * "arguments": …}\n</tool_call>`), written into a temporary directory that `close()` removes. Random weights: its
 * output is meaningless text that never calls a tool by itself, so a test that wants a call under `auto` steers it
 * with `logit_bias: {[toolCallToken]: 100}`, standing in for a trained model's choice; nor does it end a turn by
 * itself, which `logit_bias: {[endOfTurnToken]: 100}` does at once. `flags` come after the
 * helper's `--model`, as in {@link startModelServer}.
 */
export async function startHermesToolServer(flags: string[] = []): Promise<ToolModelServer> {
  const dir = await mkdtemp(join(tmpdir(), "pagoda-hermes-tools-"));
  const removeDir = () => rm(dir, { recursive: true, force: true });
  let server: ModelServer | undefined;
  try {
    const modelPath = join(dir, `${HERMES_TOOLS_ID}.gguf`);
    const { code, stderr } = await synth("--chat-template", "hermes-tools", "--out", modelPath);
    assert.equal(code, 0, stderr);
    // startModelServer puts stories260K's --model first; this later one overrides it.
    server = await startModelServer(["--model", modelPath, ...flags]);
    assert.equal(server.runtime.modelId, HERMES_TOOLS_ID);
    assert.equal(server.runtime.engine.info.toolSyntax, "hermes");
    const tokens = server.runtime.engine.tokenize("<tool_call>");
    assert.equal(tokens.length, 1, `<tool_call> should be one token: ${JSON.stringify(tokens)}`);
    const { stopTokens } = server.runtime.engine.renderChat([{ role: "user", content: "Hello" }]);
    assert.ok(stopTokens.length > 0, "the template ends a turn with a token");
    const started = server;
    return {
      ...started,
      toolCallToken: tokens[0]!,
      endOfTurnToken: stopTokens[0]!,
      close: async () => {
        try {
          await started.close();
        } finally {
          await removeDir();
        }
      },
    };
  } catch (error) {
    await server?.close();
    await removeDir();
    throw error;
  }
}

export interface StreamedToolCall {
  readonly index: number;
  readonly id: string;
  readonly name: string;
  /** Its fragments joined. */
  readonly arguments: string;
  readonly fragments: readonly string[];
}

export interface StreamedChoice {
  /** Every content delta joined. */
  readonly content: string;
  readonly calls: readonly StreamedToolCall[];
  readonly finishReason: string;
}

type JsonRecord = Record<string, unknown>;

const isRecord = (value: unknown): value is JsonRecord =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Reads the chunks of a one-choice chat completion stream (usage chunks skipped), asserting on the way that each
 * tool_calls delta carries one entry; that a call's header (`index`, `id`, `type: "function"`, `function.name`,
 * `arguments: ""`) comes once, before any of its fragments, with indexes counting up from 0; that a fragment carries
 * only `index` and a non-empty `function.arguments` for the latest call; and that one final chunk with an empty
 * delta carries the finish_reason.
 */
export function readToolCallStream(chunks: readonly unknown[]): StreamedChoice {
  let content = "";
  const calls: { index: number; id: string; name: string; fragments: string[] }[] = [];
  let finishReason: string | null = null;
  chunks.forEach((chunk, position) => {
    const where = `chunk ${position}: ${JSON.stringify(chunk)}`;
    assert.ok(isRecord(chunk) && Array.isArray(chunk.choices), where);
    if (chunk.choices.length === 0) return;
    assert.equal(chunk.choices.length, 1, where);
    const choice: unknown = chunk.choices[0];
    assert.ok(isRecord(choice) && choice.index === 0 && isRecord(choice.delta), where);
    assert.equal(finishReason, null, `a chunk follows the finish_reason: ${where}`);
    if (choice.finish_reason != null) {
      assert.deepEqual(choice.delta, {}, `the finishing chunk carries no delta: ${where}`);
      finishReason = String(choice.finish_reason);
      return;
    }
    const { content: text, tool_calls: toolCalls, ...rest } = choice.delta;
    if (typeof text === "string") content += text;
    if (toolCalls === undefined) return;
    assert.equal(text, undefined, `content and a call share a delta: ${where}`);
    assert.deepEqual(rest, {}, where);
    assert.ok(Array.isArray(toolCalls) && toolCalls.length === 1, `one call entry per delta: ${where}`);
    const entry: unknown = toolCalls[0];
    assert.ok(isRecord(entry) && isRecord(entry.function), where);
    if (entry.id !== undefined) {
      assert.equal(entry.index, calls.length, `headers count up from 0, once each: ${where}`);
      assert.equal(entry.type, "function", where);
      assert.match(String(entry.id), /^call_[A-Za-z0-9]{24}$/, where);
      assert.equal(typeof entry.function.name, "string", where);
      assert.equal(entry.function.arguments, "", `a header carries no arguments: ${where}`);
      assert.deepEqual(Object.keys(entry).sort(), ["function", "id", "index", "type"], where);
      calls.push({ index: calls.length, id: String(entry.id), name: String(entry.function.name), fragments: [] });
      return;
    }
    assert.deepEqual(Object.keys(entry).sort(), ["function", "index"], `a fragment is index and arguments: ${where}`);
    assert.deepEqual(Object.keys(entry.function), ["arguments"], where);
    assert.equal(entry.index, calls.length - 1, `a fragment belongs to the latest call header: ${where}`);
    assert.ok(typeof entry.function.arguments === "string" && entry.function.arguments.length > 0, where);
    calls.at(-1)?.fragments.push(entry.function.arguments);
  });
  assert.ok(finishReason !== null, "the stream ended without a finish_reason");
  return {
    content,
    calls: calls.map((call) => ({ ...call, arguments: call.fragments.join("") })),
    finishReason,
  };
}

/** The JSON chunks of an SSE body, up to `data: [DONE]`, which must end it. */
export function sseChunks(body: string): unknown[] {
  const events = body
    .split("\n\n")
    .map((event) => event.trim())
    .filter((event) => event.length > 0);
  assert.equal(events.at(-1), "data: [DONE]");
  return events.slice(0, -1).map((event) => {
    assert.ok(event.startsWith("data: "), event);
    return JSON.parse(event.slice("data: ".length)) as unknown;
  });
}
