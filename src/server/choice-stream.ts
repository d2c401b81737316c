/**
 * What both generation routes do with a `Generation`: stream it as SSE chunks, or collect it into one body.
 * Routes supply only the shapes of their chunks.
 */
import { type FinishedOutput, type OutputDelta, QueueTimeoutError } from "../scheduler/request.ts";
import type { RequestDeadline } from "./deadline.ts";
import { PagodaError, toErrorBody } from "./errors.ts";
import type { ChoiceResult, Generation } from "./generation.ts";
import { type OpenAiFinishReason, toOpenAiFinishReason } from "./openai-format.ts";
import type { EventStream } from "./sse.ts";

export interface ChunkBuilders {
  /** The chunks carrying a delta; none when there is nothing to send (text held back, no logprobs asked). */
  delta(index: number, delta: OutputDelta): readonly unknown[];
  /** The chunks that end a choice, the one with its `finish_reason` last. */
  finish(index: number, reason: OpenAiFinishReason): readonly unknown[];
}

/** A request failed by the server itself (e.g. at shutdown) carries its own coded error; anything else is the engine. */
function engineFailure(cause: unknown): PagodaError {
  if (cause instanceof PagodaError) return cause;
  if (cause instanceof QueueTimeoutError) {
    // The server is saturated, not broken: 503 with a hint, as for a full queue.
    return new PagodaError("PAGODA_ERR_UNAVAILABLE", `${cause.message}; the server is overloaded, retry later`, {
      cause,
      retryAfterSeconds: 5,
    });
  }
  return new PagodaError("PAGODA_ERR_ENGINE", "The engine failed while generating", { cause });
}

/**
 * Why a choice failed: the engine (or the server, at shutdown) for "error"; the deadline for a choice it aborted.
 * Null for a choice that finished normally, or one aborted because its client went away.
 */
function failureOf(output: FinishedOutput, deadline: RequestDeadline | null): PagodaError | null {
  if (output.finishReason === "error") return engineFailure(output.error);
  if (output.finishReason === "abort") return deadline?.error ?? null;
  return null;
}

/** Sends every event of `generation` to `stream`; returns the completion tokens of all choices. */
export async function streamChoices(
  generation: Generation,
  stream: EventStream,
  builders: ChunkBuilders,
  deadline: RequestDeadline | null = null,
): Promise<number> {
  let numCompletionTokens = 0;
  for await (const event of generation) {
    if (event.kind === "delta") {
      for (const chunk of builders.delta(event.index, event.delta)) await stream.send(chunk);
      continue;
    }
    numCompletionTokens += event.output.numOutputTokens;
    const failure = failureOf(event.output, deadline);
    if (failure !== null) {
      // Headers are gone already; OpenAI's clients raise an `error` member of a chunk as an API error.
      await stream.send(toErrorBody(failure));
      continue;
    }
    for (const chunk of builders.finish(event.index, toOpenAiFinishReason(event.output.finishReason)))
      await stream.send(chunk);
  }
  return numCompletionTokens;
}

/** Waits for every choice; a failure in any (engine, shutdown, deadline) becomes the error of the whole request. */
export async function collectChoices(
  generation: Generation,
  deadline: RequestDeadline | null = null,
): Promise<ChoiceResult[]> {
  const results = await generation.collect();
  const failures = results.map((result) => failureOf(result.output, deadline)).filter((failure) => failure !== null);
  // An engine failure says more than the deadline that may have passed meanwhile.
  const failure = failures.find((candidate) => candidate.code !== "PAGODA_ERR_REQUEST_TIMEOUT") ?? failures[0];
  if (failure !== undefined) throw failure;
  return results;
}

export function sumCompletionTokens(results: readonly ChoiceResult[]): number {
  return results.reduce((sum, result) => sum + result.output.numOutputTokens, 0);
}
