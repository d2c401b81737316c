/**
 * Bridges HTTP handlers and the engine loop: submits one request per choice, as plain values, and turns their
 * sink callbacks into one ordered stream of events. A handler either iterates it (streaming) or collects it.
 */
import { randomUUID } from "node:crypto";
import type { SampledLogprobs, TokenId } from "../engine/engine.ts";
import type { EngineLoop } from "../scheduler/engine-loop.ts";
import type { FinishedOutput, GenerationParams, OutputDelta, RequestId, RequestSink } from "../scheduler/request.ts";
import { PagodaError } from "./errors.ts";

export interface ChoiceSpec {
  readonly index: number;
  readonly promptTokens: readonly TokenId[];
  readonly params: GenerationParams;
}

export type ChoiceEvent =
  | { readonly kind: "delta"; readonly index: number; readonly delta: OutputDelta }
  | { readonly kind: "finish"; readonly index: number; readonly output: FinishedOutput };

export interface ChoiceResult {
  readonly index: number;
  readonly text: string;
  readonly tokens: TokenId[];
  readonly logprobs: SampledLogprobs[];
  readonly output: FinishedOutput;
}

/** What a generation needs of the engine loop. */
export type GenerationLoop = Pick<EngineLoop, "submit" | "abort">;

/** Seconds a client is told to wait when the queue is full. */
const QUEUE_FULL_RETRY_AFTER_SECONDS = 1;

export class Generation implements AsyncIterable<ChoiceEvent> {
  readonly id: string;
  /** Milliseconds from submission to the first token of any choice; null before it. */
  timeToFirstTokenMs: number | null = null;
  /** Summed over finished choices, for the access log. */
  numPromptTokens = 0;
  numCompletionTokens = 0;
  /** The most prompt tokens any choice took from the prefix cache. */
  numCachedTokens = 0;
  private readonly loop: GenerationLoop;
  private readonly requestIds: RequestId[] = [];
  private readonly events: ChoiceEvent[] = [];
  private numOpen: number;
  private waiter: (() => void) | null = null;
  private readonly startedAtMs = performance.now();

  private constructor(loop: GenerationLoop, numChoices: number) {
    this.loop = loop;
    this.id = randomUUID().replaceAll("-", "");
    this.numOpen = numChoices;
  }

  /** Submits every choice, or none: a full queue rejects the whole generation with 429. */
  static start(loop: GenerationLoop, choices: readonly ChoiceSpec[]): Generation {
    const generation = new Generation(loop, choices.length);
    for (const choice of choices) {
      const requestId = `${generation.id}-${choice.index}` as RequestId;
      const isAccepted = loop.submit({
        id: requestId,
        promptTokens: choice.promptTokens,
        params: choice.params,
        sink: generation.sinkFor(choice.index),
        arrivalAtMs: performance.now(),
      });
      if (!isAccepted) {
        generation.abort();
        throw new PagodaError("PAGODA_ERR_QUEUE_FULL", "The server is at capacity; retry later", {
          retryAfterSeconds: QUEUE_FULL_RETRY_AFTER_SECONDS,
        });
      }
      generation.requestIds.push(requestId);
    }
    return generation;
  }

  /** Stops every choice; each is finished with "abort" and frees its sequence at the next engine step. */
  abort(): void {
    for (const requestId of this.requestIds) this.loop.abort(requestId);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ChoiceEvent> {
    while (this.numOpen > 0 || this.events.length > 0) {
      const event = this.events.shift();
      if (event !== undefined) {
        yield event;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  async collect(): Promise<ChoiceResult[]> {
    const byIndex = new Map<number, { text: string[]; tokens: TokenId[]; logprobs: SampledLogprobs[] }>();
    const results: ChoiceResult[] = [];
    for await (const event of this) {
      const entry = byIndex.get(event.index) ?? { text: [], tokens: [], logprobs: [] };
      byIndex.set(event.index, entry);
      if (event.kind === "delta") {
        entry.text.push(event.delta.text);
        entry.tokens.push(...event.delta.tokens);
        entry.logprobs.push(...event.delta.logprobs);
      } else {
        results.push({
          index: event.index,
          text: entry.text.join(""),
          tokens: entry.tokens,
          logprobs: entry.logprobs,
          output: event.output,
        });
      }
    }
    return results.sort((a, b) => a.index - b.index);
  }

  private sinkFor(index: number): RequestSink {
    return {
      onDelta: (delta) => {
        this.timeToFirstTokenMs ??= performance.now() - this.startedAtMs;
        this.push({ kind: "delta", index, delta });
      },
      onFinish: (output) => {
        this.numOpen -= 1;
        this.numPromptTokens += output.numPromptTokens;
        this.numCompletionTokens += output.numOutputTokens;
        this.numCachedTokens = Math.max(this.numCachedTokens, output.numCachedTokens);
        this.push({ kind: "finish", index, output });
      },
    };
  }

  private push(event: ChoiceEvent): void {
    this.events.push(event);
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}
