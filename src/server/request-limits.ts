/**
 * The server's own bounds on what one request may ask for, so a single client cannot book the engine for hours
 * (max_tokens, n), make every token expensive (stop strings) or fill the KV pool with one prompt. Each refusal
 * is a 400 that names the limit and the value, worded and coded the way OpenAI words its own range errors.
 */
import { PagodaError } from "./errors.ts";

export interface RequestLimits {
  /** Largest max_tokens; 0 = only the context bound. Also the default when a request omits max_tokens. */
  readonly maxTokens: number;
  /** Largest n. */
  readonly maxN: number;
  /** Most stop strings, as OpenAI allows. */
  readonly maxStopStrings: number;
  /** Longest stop string, in characters. */
  readonly maxStopLength: number;
  /** Most tokens in one prompt; 0 = only the context bound. */
  readonly maxPromptTokens: number;
}

/** OpenAI accepts up to 4 stop sequences. */
export const MAX_STOP_STRINGS = 4;

export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  maxTokens: 0,
  maxN: 16,
  maxStopStrings: MAX_STOP_STRINGS,
  maxStopLength: 256,
  maxPromptTokens: 0,
};

interface GenerationLimitFields {
  readonly n?: number | null;
  readonly stop?: string | readonly string[] | null;
}

/** Checks n and stop, which need no tokenizer, so a hostile request is refused before any work is done. */
export function checkGenerationLimits(body: GenerationLimitFields, limits: RequestLimits): void {
  if (body.n != null) checkAtMost(body.n, limits.maxN, "n");
  if (body.stop == null) return;
  if (typeof body.stop === "string") {
    checkStopLength(body.stop, limits.maxStopLength, "stop");
    return;
  }
  if (body.stop.length > limits.maxStopStrings) {
    throw new PagodaError(
      "PAGODA_ERR_ARRAY_ABOVE_MAX_LENGTH",
      `Invalid 'stop': array too long. Expected an array with maximum length ${limits.maxStopStrings}, but got an array with length ${body.stop.length} instead.`,
      { param: "stop" },
    );
  }
  for (const [index, stop] of body.stop.entries()) checkStopLength(stop, limits.maxStopLength, `stop[${index}]`);
}

/** Refuses a max_tokens above the limit; `param` is the field the client used. */
export function checkMaxTokens(maxTokens: number | null, param: string, limits: RequestLimits): void {
  if (maxTokens !== null && limits.maxTokens > 0) checkAtMost(maxTokens, limits.maxTokens, param);
}

/**
 * The max_tokens of a request that sent none: the route's `fallback` (16 for completions, the rest of the context
 * for chat), capped by the limit so that omitting max_tokens never escapes it.
 */
export function defaultMaxTokens(fallback: number, limits: RequestLimits): number {
  return limits.maxTokens === 0 ? fallback : Math.min(fallback, limits.maxTokens);
}

/** Refuses a prompt longer than the limit with OpenAI's context_length_exceeded, which clients already handle. */
export function checkPromptTokens(numTokens: number, param: string, limits: RequestLimits): void {
  if (limits.maxPromptTokens === 0 || numTokens <= limits.maxPromptTokens) return;
  throw new PagodaError(
    "PAGODA_ERR_CONTEXT_LENGTH",
    `This server accepts at most ${limits.maxPromptTokens} prompt tokens per prompt (--max-prompt-tokens). However, your prompt has ${numTokens} tokens. Please reduce the length of the prompt.`,
    { param },
  );
}

function checkAtMost(value: number, limit: number, param: string): void {
  if (value <= limit) return;
  throw new PagodaError(
    "PAGODA_ERR_ABOVE_MAX_VALUE",
    `Invalid '${param}': integer above maximum value. Expected a value <= ${limit}, but got ${value} instead.`,
    { param },
  );
}

function checkStopLength(stop: string, limit: number, param: string): void {
  if (stop.length <= limit) return;
  throw new PagodaError(
    "PAGODA_ERR_ABOVE_MAX_LENGTH",
    `Invalid '${param}': string too long. Expected a string with maximum length ${limit}, but got a string with length ${stop.length} instead.`,
    { param },
  );
}
