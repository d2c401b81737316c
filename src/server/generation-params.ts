/**
 * Turns validated request bodies into the scheduler's `GenerationParams`, rejecting what pagoda cannot honour
 * rather than silently ignoring it.
 */
import { randomInt } from "node:crypto";
import type { SamplingParams, TokenId } from "../engine/engine.ts";
import type { GenerationParams } from "../scheduler/request.ts";
import { PagodaError } from "./errors.ts";
import { NO_OUTPUT_CONSTRAINTS, type OutputConstraints } from "./output-constraints.ts";

/** OpenAI's default for `/v1/completions`. */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

export interface SamplingFields {
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  ignore_eos?: boolean | null;
  priority?: number | null;
}

export interface ChoiceParamsInput {
  readonly body: SamplingFields;
  readonly numPromptTokens: number;
  /** The request's max_tokens, or null for "until the context is full". */
  readonly maxTokens: number | null;
  readonly contextSize: number;
  readonly choiceIndex: number;
  /** The server's base seed for requests without one; null draws a random seed. */
  readonly serverSeed: number | null;
  readonly requestOrdinal: number;
  readonly topLogprobs: number | null;
  readonly extraStopStrings?: readonly string[];
  readonly extraStopTokens?: readonly TokenId[];
  /** The request's grammar and logit biases; defaults to none. */
  readonly constraints?: OutputConstraints;
}

/** Enforces the context like vLLM: prompt plus requested tokens must fit, or the request is refused. */
export function checkContextLength(
  numPromptTokens: number,
  maxTokens: number | null,
  contextSize: number,
  param: string,
): void {
  const requested = numPromptTokens + (maxTokens ?? 0);
  if (numPromptTokens >= contextSize || requested > contextSize) {
    const detail =
      maxTokens === null
        ? `${numPromptTokens} in the prompt`
        : `${numPromptTokens} in the prompt, ${maxTokens} in the completion`;
    throw new PagodaError(
      "PAGODA_ERR_CONTEXT_LENGTH",
      `This model's maximum context length is ${contextSize} tokens. However, you requested ${Math.max(requested, numPromptTokens)} tokens (${detail}). Please reduce the length of the prompt or the completion.`,
      { param },
    );
  }
}

export function toGenerationParams(input: ChoiceParamsInput): GenerationParams {
  const { body } = input;
  const stopStrings = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  const maxTokens = input.maxTokens ?? input.contextSize - input.numPromptTokens;
  const constraints = input.constraints ?? NO_OUTPUT_CONSTRAINTS;
  // A template's stop text could occur inside a constrained output; the grammar's end ends it instead.
  const templateStops = constraints.grammar === null ? (input.extraStopStrings ?? []) : [];
  return {
    maxTokens,
    sampling: {
      ...toSamplingParams(input),
      logitBias: constraints.logitBias,
      grammar: constraints.grammar,
      grammarTriggers: constraints.grammarTriggers,
    },
    stopStrings: [...stopStrings.filter((stop) => stop.length > 0), ...templateStops],
    stopTokens: [...(input.extraStopTokens ?? [])],
    ignoreEos: body.ignore_eos ?? false,
    priority: body.priority ?? 0,
  };
}

function toSamplingParams(input: ChoiceParamsInput): SamplingParams {
  const { body } = input;
  const topK = body.top_k ?? 0;
  return {
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: Math.max(topK, 0),
    minP: body.min_p ?? 0,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    seed: resolveSeed(body.seed ?? null, input),
    topLogprobs: input.topLogprobs,
  };
}

/**
 * Every choice gets its own seed: equal request seeds reproduce, and the choices of one request still differ.
 * Without any seed a random one is drawn: node-llama-cpp would otherwise seed with the current second, and
 * concurrent requests would all sample the same tokens.
 */
function resolveSeed(requestSeed: number | null, input: ChoiceParamsInput): number {
  if (requestSeed !== null) return mixSeed(requestSeed, input.choiceIndex);
  if (input.serverSeed !== null) return mixSeed(mixSeed(input.serverSeed, input.requestOrdinal), input.choiceIndex);
  return randomInt(0, 2 ** 32);
}

/** A 32-bit avalanche of (seed, index) (splitmix32's finalizer), so nearby seeds give unrelated streams. */
export function mixSeed(seed: number, index: number): number {
  let value = (Math.trunc(seed) ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  value = Math.imul(value ^ (value >>> 16), 0x21f0aaad) >>> 0;
  value = Math.imul(value ^ (value >>> 15), 0x735a2d97) >>> 0;
  return (value ^ (value >>> 15)) >>> 0;
}
