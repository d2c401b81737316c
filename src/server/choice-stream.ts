/**
 * What both generation routes do with a `Generation`: stream it as SSE chunks, or collect it into one body.
 * Routes supply only the shapes of their chunks.
 */
import type { OutputDelta } from "../scheduler/request.ts";
import { PagodaError, toErrorBody } from "./errors.ts";
import type { ChoiceResult, Generation } from "./generation.ts";
import { toOpenAiFinishReason, type OpenAiFinishReason } from "./openai-format.ts";
import type { EventStream } from "./sse.ts";

export interface ChunkBuilders {
  /** The chunk carrying a delta, or null when there is nothing to send (text held back, no logprobs asked). */
  delta(index: number, delta: OutputDelta): unknown;
  finish(index: number, reason: OpenAiFinishReason): unknown;
}

/** A request failed by the server itself (e.g. at shutdown) carries its own coded error; anything else is the engine. */
function engineFailure(cause: unknown): PagodaError {
  if (cause instanceof PagodaError) return cause;
  return new PagodaError("PAGODA_ERR_ENGINE", "The engine failed while generating", { cause });
}

/** Sends every event of `generation` to `stream`; returns the completion tokens of all choices. */
export async function streamChoices(generation: Generation, stream: EventStream, builders: ChunkBuilders): Promise<number> {
  let numCompletionTokens = 0;
  for await (const event of generation) {
    if (event.kind === "delta") {
      const chunk = builders.delta(event.index, event.delta);
      if (chunk !== null) await stream.send(chunk);
      continue;
    }
    numCompletionTokens += event.output.numOutputTokens;
    if (event.output.finishReason === "error") {
      // Headers are gone already; OpenAI's clients raise an `error` member of a chunk as an API error.
      await stream.send(toErrorBody(engineFailure(event.output.error)));
      continue;
    }
    await stream.send(builders.finish(event.index, toOpenAiFinishReason(event.output.finishReason)));
  }
  return numCompletionTokens;
}

/** Waits for every choice; an engine failure in any becomes a 500 for the whole request. */
export async function collectChoices(generation: Generation): Promise<ChoiceResult[]> {
  const results = await generation.collect();
  const failed = results.find((result) => result.output.finishReason === "error");
  if (failed !== undefined) throw engineFailure(failed.output.error);
  return results;
}

export function sumCompletionTokens(results: readonly ChoiceResult[]): number {
  return results.reduce((sum, result) => sum + result.output.numOutputTokens, 0);
}
