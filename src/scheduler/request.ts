import type { SampledLogprobs, SamplingParams, SequenceId, TokenId } from "../engine/engine.ts";
import type { RequestId } from "../engine/ids.ts";

export type { RequestId };

/** "abort": the client went away or a deadline passed; "error": the engine failed this request. */
export type FinishReason = "stop" | "length" | "abort" | "error";

export type RequestStatus = "waiting" | "running" | "finished";

export interface GenerationParams {
  readonly maxTokens: number;
  readonly sampling: SamplingParams;
  /** Strings that end generation; the matched string is not part of the output. */
  readonly stopStrings: readonly string[];
  /** Tokens that end generation in addition to the model's end-of-generation tokens. */
  readonly stopTokens: readonly TokenId[];
  /** Keep generating past end-of-generation tokens (benchmarks rely on fixed output lengths). */
  readonly ignoreEos: boolean;
  /** Lower runs first and is preempted last. Defaults to 0. */
  readonly priority?: number;
}

/** A request that waited in the queue longer than the server allows. */
export class QueueTimeoutError extends Error {
  readonly waitedMs: number;

  constructor(waitedMs: number) {
    super(`the request waited ${Math.round(waitedMs / 1000)} s in the queue without being scheduled`);
    this.name = "QueueTimeoutError";
    this.waitedMs = waitedMs;
  }
}

/** What one step added to a request's output. `text` may be empty while a possible stop string is held back. */
export interface OutputDelta {
  readonly text: string;
  readonly tokens: readonly TokenId[];
  readonly logprobs: readonly SampledLogprobs[];
}

export interface FinishedOutput {
  readonly finishReason: FinishReason;
  readonly error: Error | null;
  readonly numPromptTokens: number;
  readonly numOutputTokens: number;
  /** Prompt tokens whose KV came from the prefix cache. */
  readonly numCachedTokens: number;
}

/** Receives a request's progress. Called from the engine loop; implementations must not throw. */
export interface RequestSink {
  onDelta(delta: OutputDelta): void;
  onFinish(output: FinishedOutput): void;
}

/** What a caller hands the engine loop: plain values, from which the loop builds the scheduler's `Request`. */
export interface RequestSubmission {
  readonly id: RequestId;
  readonly promptTokens: readonly TokenId[];
  readonly params: GenerationParams;
  /** Where the request's text and its end go. */
  readonly sink: RequestSink;
  /** When the request arrived, on the engine loop's clock (`performance.now`). Defaults to the submission. */
  readonly arrivalAtMs?: number;
}

/** A request as the scheduler tracks it; the engine loop builds it from a submission, and it never leaves the core. */
export class Request {
  readonly id: RequestId;
  readonly promptTokens: readonly TokenId[];
  readonly params: GenerationParams;
  readonly arrivalAtMs: number;
  readonly outputTokens: TokenId[] = [];
  /** Prompt then output tokens, kept as one array for the block hashes. */
  readonly allTokens: TokenId[];
  /** Tokens of prompt and output that the KV cache holds. */
  numComputedTokens = 0;
  /** Prompt tokens served from the prefix cache when the request was first scheduled. */
  numCachedTokens = 0;
  numPreemptions = 0;
  status: RequestStatus = "waiting";
  sequenceId: SequenceId | null = null;
  finishReason: FinishReason | null = null;
  isAbortRequested = false;
  /** When it first got a sequence, on the scheduler's clock; null while it never has. */
  scheduledAtMs: number | null = null;

  constructor(id: RequestId, promptTokens: readonly TokenId[], params: GenerationParams, arrivalAtMs: number) {
    this.id = id;
    this.promptTokens = promptTokens;
    this.params = params;
    this.arrivalAtMs = arrivalAtMs;
    this.allTokens = [...promptTokens];
  }

  get numTokens(): number {
    return this.allTokens.length;
  }

  get priority(): number {
    return this.params.priority ?? 0;
  }

  appendOutput(token: TokenId): void {
    this.outputTokens.push(token);
    this.allTokens.push(token);
  }

  tokenAt(position: number): TokenId {
    const token = this.allTokens[position];
    if (token === undefined) throw new RangeError(`request ${this.id} has no token at ${position}`);
    return token;
  }

  tokensBetween(start: number, end: number): TokenId[] {
    const tokens: TokenId[] = [];
    for (let position = start; position < end; position++) tokens.push(this.tokenAt(position));
    return tokens;
  }
}
