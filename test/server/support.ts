/**
 * Shared helpers of the server tests: JSON posts through `inject`, exact SSE parsing, error-envelope checks and a
 * gate that holds the FakeEngine at a chosen step.
 */
import assert from "node:assert/strict";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { assertMatchesSchema } from "../helpers/openapi.ts";

export type InjectResponse = LightMyRequestResponse;

/** A parsed JSON body, loosely typed so assertions can reach into it. */
// biome-ignore lint/suspicious/noExplicitAny: test assertions reach into arbitrary response bodies.
export type Json = any;

export function postJson(
  app: FastifyInstance,
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<InjectResponse> {
  return app.inject({
    method: "POST",
    url,
    headers: { "content-type": "application/json", ...headers },
    payload: JSON.stringify(body),
  });
}

/** Parses a 200 JSON response, failing with the body when the status is not 200. */
export function okJson(response: InjectResponse): Json {
  assert.equal(response.statusCode, 200, `expected 200, got ${response.statusCode}: ${response.body}`);
  assert.match(String(response.headers["content-type"]), /^application\/json/);
  return JSON.parse(response.body);
}

export interface SseResult {
  /** Every `data:` payload except the final `[DONE]`, parsed. */
  readonly chunks: Json[];
}

/**
 * Checks OpenAI's SSE framing exactly: status 200, an event-stream content type, every frame `data: <json>\n\n`
 * with nothing between frames, and `data: [DONE]\n\n` as the one last frame.
 */
export function parseStream(response: InjectResponse): SseResult {
  assert.equal(response.statusCode, 200, `expected 200, got ${response.statusCode}: ${response.body}`);
  assert.equal(response.headers["content-type"], "text/event-stream; charset=utf-8");
  const body = response.body;
  assert.ok(
    body.endsWith("data: [DONE]\n\n"),
    `the stream must end with the [DONE] frame: ${JSON.stringify(body.slice(-80))}`,
  );
  const frames = body.slice(0, -"\n\n".length).split("\n\n");
  for (const frame of frames) assert.ok(frame.startsWith("data: "), `not a data frame: ${JSON.stringify(frame)}`);
  const payloads = frames.map((frame) => frame.slice("data: ".length));
  assert.equal(payloads.at(-1), "[DONE]");
  assert.equal(payloads.indexOf("[DONE]"), payloads.length - 1, "[DONE] is sent exactly once, last");
  const chunks = payloads.slice(0, -1).map((payload) => JSON.parse(payload) as Json);
  // Re-serialising proves each frame is a single JSON value with no extra lines or fields around it.
  assert.equal(body, [...chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`), "data: [DONE]\n\n"].join(""));
  return { chunks };
}

export interface ExpectedError {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  readonly param?: string | null;
}

/** Asserts an OpenAI error envelope with the given status, type, code and (when given) param; returns its error. */
export function assertError(response: InjectResponse, expected: ExpectedError): Json {
  assert.equal(
    response.statusCode,
    expected.status,
    `expected ${expected.status}, got ${response.statusCode}: ${response.body}`,
  );
  assert.match(String(response.headers["content-type"]), /^application\/json/);
  const body: Json = JSON.parse(response.body);
  assertMatchesSchema("ErrorResponse", body);
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.equal(body.error.type, expected.type);
  assert.equal(body.error.code, expected.code);
  if (expected.param !== undefined) assert.equal(body.error.param, expected.param);
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 0, "the error message is not empty");
  return body.error;
}

export class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;

  constructor() {
    this.promise = new Promise<T>((resolve) => {
      this.resolve = resolve;
    });
  }
}

export interface Hold {
  /** Resolves when the engine has entered the held step. */
  readonly reached: Promise<void>;
  /** Lets the held step run. */
  release(): void;
}

/** Pass `beforeStep` to the FakeEngine; `holdAt(n)` then stops the loop inside step n until released. */
export class StepGate {
  private readonly holds = new Map<number, { reached: Deferred; released: Deferred }>();

  readonly beforeStep = async (stepIndex: number): Promise<void> => {
    const hold = this.holds.get(stepIndex);
    if (hold === undefined) return;
    hold.reached.resolve();
    await hold.released.promise;
  };

  holdAt(stepIndex: number): Hold {
    const hold = { reached: new Deferred(), released: new Deferred() };
    this.holds.set(stepIndex, hold);
    return { reached: hold.reached.promise, release: () => hold.released.resolve() };
  }

  /** Releases every hold, so closing an app never waits on a forgotten one. */
  releaseAll(): void {
    for (const hold of this.holds.values()) hold.released.resolve();
  }
}
