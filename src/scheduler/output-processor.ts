/**
 * The front end of the core's outputs, as vLLM's output processor: turns each request's new tokens into text,
 * holds back text that could begin a stop string, ends a request at a stop string, and hands plain deltas and the
 * final record to the request's sink. It also keeps each request's timing (first token, time between tokens) for
 * its `RequestStats`. The core knows tokens only; when a stop string ends a request here, the engine loop has the
 * scheduler finish it at once.
 */
import type { SampledLogprobs, TokenId } from "../engine/engine.ts";
import type { CoreOutput } from "./core-output.ts";
import { type Detokenize, IncrementalDetokenizer } from "./incremental-detokenizer.ts";
import type { FinishReason, GenerationParams, RequestId, RequestSink } from "./request.ts";
import { findStopString, heldBackLength } from "./stop-checker.ts";

/** One finished request, as a plain record for metrics and tests. Times are `performance.now()` milliseconds. */
export interface RequestStats {
  readonly requestId: RequestId;
  readonly finishReason: FinishReason;
  readonly numPromptTokens: number;
  readonly numOutputTokens: number;
  readonly numCachedTokens: number;
  readonly numPreemptions: number;
  readonly maxTokens: number;
  readonly arrivalAtMs: number;
  /** When it first got a sequence; null if it never left the queue. */
  readonly scheduledAtMs: number | null;
  readonly firstTokenAtMs: number | null;
  readonly lastTokenAtMs: number | null;
  readonly finishedAtMs: number;
  /** Time between consecutive tokens of this request, for inter-token latency. */
  readonly interTokenMs: readonly number[];
}

export interface OutputProcessorOptions {
  readonly detokenize: Detokenize;
  /** Defaults to `performance.now`. */
  readonly now?: () => number;
  readonly onRequestFinished?: (stats: RequestStats) => void;
}

/** A request the processor tracks, from its submission to its finish. */
export interface ProcessedRequest {
  readonly id: RequestId;
  readonly promptTokens: readonly TokenId[];
  readonly params: GenerationParams;
  readonly sink: RequestSink;
  readonly arrivalAtMs: number;
}

interface RequestState {
  readonly request: ProcessedRequest;
  readonly detokenizer: IncrementalDetokenizer;
  /** Characters of `detokenizer.emittedText` already handed to the sink. */
  numSentChars: number;
  numOutputTokens: number;
  firstTokenAtMs: number | null;
  lastTokenAtMs: number | null;
  readonly interTokenMs: number[];
}

export class OutputProcessor {
  private readonly options: OutputProcessorOptions;
  private readonly now: () => number;
  private readonly states = new Map<RequestId, RequestState>();

  constructor(options: OutputProcessorOptions) {
    this.options = options;
    this.now = options.now ?? (() => performance.now());
  }

  /** Requests submitted and not yet finished. */
  get numRequests(): number {
    return this.states.size;
  }

  has(requestId: RequestId): boolean {
    return this.states.has(requestId);
  }

  addRequest(request: ProcessedRequest): void {
    if (this.states.has(request.id)) throw new Error(`request ${request.id} is already being processed`);
    this.states.set(request.id, {
      request,
      detokenizer: new IncrementalDetokenizer(this.options.detokenize, request.promptTokens),
      numSentChars: 0,
      numOutputTokens: 0,
      firstTokenAtMs: null,
      lastTokenAtMs: null,
      interTokenMs: [],
    });
  }

  /**
   * Applies one core output at `nowMs`, the time of the step that produced it: a delta per new token, then the
   * finish. Returns null, or how many of the new tokens were output before a stop string ended the request; the
   * core must then finish it (unless it already has).
   */
  processOutput(output: CoreOutput, nowMs: number): number | null {
    const state = this.states.get(output.requestId);
    if (state === undefined) throw new Error(`an output for request ${output.requestId}, which is not being processed`);
    const { newTokens } = output;
    if (newTokens.length > 0) {
      state.firstTokenAtMs ??= nowMs;
      if (state.lastTokenAtMs !== null) state.interTokenMs.push(nowMs - state.lastTokenAtMs);
      state.lastTokenAtMs = nowMs;
    }
    for (const [index, token] of newTokens.entries()) {
      const finishReason = index === newTokens.length - 1 ? output.finishReason : null;
      const logprobs = output.logprobs === null ? [] : [output.logprobs];
      const isStopString = this.appendToken(state, token, finishReason, logprobs);
      if (isStopString) {
        this.finish(state, output, "stop");
        return index + 1;
      }
      if (finishReason !== null) {
        this.finish(state, output, finishReason);
        return null;
      }
    }
    if (newTokens.length === 0 && output.finishReason !== null) this.finish(state, output, output.finishReason);
    return null;
  }

  /**
   * Streams the text `token` completes. `finishReason` is the core's for this token: a stop token ("stop") adds
   * no text and ends the stream, "length" releases everything held back. Returns true when a stop string ended
   * the text; the stream then ends where it begins.
   */
  private appendToken(
    state: RequestState,
    token: TokenId,
    finishReason: FinishReason | null,
    logprobs: readonly SampledLogprobs[],
  ): boolean {
    state.numOutputTokens += 1;
    const { detokenizer } = state;
    const { stopStrings } = state.request.params;
    if (finishReason === "stop") {
      detokenizer.flush();
      this.emit(state, detokenizer.emittedText.length, token, logprobs);
      return false;
    }
    const textBefore = detokenizer.emittedText.length;
    detokenizer.push(token);
    const text = detokenizer.emittedText;
    const match = findStopString(text, stopStrings, textBefore);
    if (match !== null) {
      this.emit(state, match.index, token, logprobs);
      return true;
    }
    if (finishReason !== null) detokenizer.flush();
    const sendUpTo =
      finishReason === null ? text.length - heldBackLength(text, stopStrings) : detokenizer.emittedText.length;
    this.emit(state, sendUpTo, token, logprobs);
    return false;
  }

  private emit(state: RequestState, sendUpTo: number, token: TokenId, logprobs: readonly SampledLogprobs[]): void {
    const end = Math.max(sendUpTo, state.numSentChars);
    const text = state.detokenizer.emittedText.slice(state.numSentChars, end);
    state.numSentChars = end;
    state.request.sink.onDelta({ text, tokens: [token], logprobs });
  }

  private finish(state: RequestState, output: CoreOutput, finishReason: FinishReason): void {
    const { request } = state;
    this.states.delete(request.id);
    request.sink.onFinish({
      finishReason,
      error: output.error,
      numPromptTokens: request.promptTokens.length,
      numOutputTokens: state.numOutputTokens,
      numCachedTokens: output.numCachedTokens,
    });
    this.options.onRequestFinished?.({
      requestId: request.id,
      finishReason,
      numPromptTokens: request.promptTokens.length,
      numOutputTokens: state.numOutputTokens,
      numCachedTokens: output.numCachedTokens,
      numPreemptions: output.numPreemptions,
      maxTokens: request.params.maxTokens,
      arrivalAtMs: request.arrivalAtMs,
      scheduledAtMs: output.scheduledAtMs,
      firstTokenAtMs: state.firstTokenAtMs,
      lastTokenAtMs: state.lastTokenAtMs,
      finishedAtMs: this.now(),
      interTokenMs: state.interTokenMs,
    });
  }
}
