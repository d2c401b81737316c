/**
 * The continuous-batching scheduler, in the shape of vLLM's v1 scheduler: no prefill or decode phase, every
 * request has `numComputedTokens` catching up with its tokens, and one token budget covers decodes and prompt
 * chunks alike. `schedule()` plans a step; `updateFromOutput()` applies what the engine returned.
 */
import type { Engine, StepItem, StepOutput, TokenId } from "../engine/engine.ts";
import { IncrementalDetokenizer } from "./incremental-detokenizer.ts";
import type { FinishReason, OutputDelta, Request, RequestId } from "./request.ts";
import { findStopString, heldBackLength, isStopToken, lengthStop } from "./stop-checker.ts";

/** The part of `Engine` the scheduler needs, so tests can hand it a model-free engine. */
export type SchedulerEngine = Pick<
  Engine,
  "info" | "acquireSequence" | "releaseSequence" | "isEndOfGeneration" | "detokenize"
>;

/** One finished request, as a plain record for metrics and tests. Times are the scheduler clock's milliseconds. */
export interface RequestStats {
  readonly requestId: RequestId;
  readonly finishReason: FinishReason;
  readonly numPromptTokens: number;
  readonly numOutputTokens: number;
  readonly maxTokens: number;
  readonly arrivalMs: number;
  /** When it first got a sequence; null if it never left the queue. */
  readonly scheduledMs: number | null;
  readonly firstTokenMs: number | null;
  readonly lastTokenMs: number | null;
  readonly finishedMs: number;
  /** Time between consecutive tokens of this request, for inter-token latency. */
  readonly interTokenMs: readonly number[];
}

export interface SchedulerOptions {
  /** Most requests running at once; never more than the engine's sequences. */
  readonly maxNumRunning: number;
  /** Most tokens in one step. */
  readonly maxNumBatchedTokens: number;
  /** Most requests waiting; `add` refuses beyond it. */
  readonly maxNumWaiting: number;
  /** Defaults to `performance.now`. */
  readonly now?: () => number;
  readonly onRequestFinished?: (stats: RequestStats) => void;
}

export interface ScheduledItem {
  readonly request: Request;
  readonly item: StepItem;
}

export interface StepPlan {
  readonly scheduled: readonly ScheduledItem[];
  readonly numTokens: number;
  /** Of `numTokens`, those that are prompt tokens (prefill). */
  readonly numPromptTokens: number;
  /** Requests finished while planning (aborted ones). */
  readonly numFinishedBeforeStep: number;
}

interface TextState {
  readonly detokenizer: IncrementalDetokenizer;
  /** Characters of `detokenizer.emittedText` already handed to the sink. */
  numSentChars: number;
  readonly scheduledMs: number;
  lastTokenMs: number | null;
  readonly interTokenMs: number[];
}

export class Scheduler {
  private readonly engine: SchedulerEngine;
  private readonly options: SchedulerOptions;
  private readonly now: () => number;
  private readonly waiting: Request[] = [];
  private readonly running: Request[] = [];
  private readonly text = new Map<RequestId, TextState>();

  constructor(engine: SchedulerEngine, options: SchedulerOptions) {
    this.engine = engine;
    this.now = options.now ?? (() => performance.now());
    this.options = {
      ...options,
      maxNumRunning: Math.min(options.maxNumRunning, engine.info.numSequences),
      maxNumBatchedTokens: Math.min(options.maxNumBatchedTokens, engine.info.batchSize),
    };
    if (this.options.maxNumBatchedTokens < this.options.maxNumRunning) {
      throw new RangeError("the token budget must cover one token of every running request");
    }
  }

  get numWaiting(): number {
    return this.waiting.length;
  }

  get numRunning(): number {
    return this.running.length;
  }

  /** Tokens the KV cache holds for running requests. */
  get numKvTokens(): number {
    return this.running.reduce((sum, request) => sum + request.numComputedTokens, 0);
  }

  hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /** Queues a request; returns false when the waiting queue is full. */
  add(request: Request): boolean {
    if (this.waiting.length >= this.options.maxNumWaiting) return false;
    this.waiting.push(request);
    return true;
  }

  /**
   * Aborts a request. A waiting one is finished at once, so it stops holding a queue place; a running one is
   * finished and its sequence freed at the next `schedule()`, never in the middle of a step.
   */
  abort(requestId: RequestId): void {
    const waiting = this.waiting.find((request) => request.id === requestId);
    if (waiting !== undefined) {
      this.finish(waiting, "abort", null);
      return;
    }
    const running = this.running.find((request) => request.id === requestId);
    if (running !== undefined) running.isAbortRequested = true;
  }

  schedule(): StepPlan {
    const numFinishedBeforeStep = this.finishAborted();
    let budget = this.options.maxNumBatchedTokens;
    const scheduled: ScheduledItem[] = [];
    // Decoding requests first: each owes exactly one token, so none is starved by a long prompt.
    const decoding = this.running.filter((request) => request.numComputedTokens >= request.promptTokens.length);
    const prefilling = this.running.filter((request) => request.numComputedTokens < request.promptTokens.length);
    for (const request of [...decoding, ...prefilling]) {
      if (budget <= 0) break;
      const item = this.planChunk(request, budget);
      scheduled.push({ request, item });
      budget -= item.tokens.length;
    }
    while (budget > 0 && this.waiting.length > 0 && this.running.length < this.options.maxNumRunning) {
      const request = this.waiting[0];
      if (request === undefined) break;
      const sequenceId = this.engine.acquireSequence(request.params.sampling);
      if (sequenceId === null) break;
      this.waiting.shift();
      request.sequenceId = sequenceId;
      request.status = "running";
      this.running.push(request);
      const detokenizer = new IncrementalDetokenizer((tokens) => this.engine.detokenize(tokens), request.promptTokens);
      this.text.set(request.id, { detokenizer, numSentChars: 0, scheduledMs: this.now(), lastTokenMs: null, interTokenMs: [] });
      const item = this.planChunk(request, budget);
      scheduled.push({ request, item });
      budget -= item.tokens.length;
    }
    const numPromptTokens = scheduled.reduce(
      (sum, { request, item }) => sum + Math.max(0, Math.min(request.promptTokens.length, item.startPos + item.tokens.length) - item.startPos),
      0,
    );
    return { scheduled, numTokens: this.options.maxNumBatchedTokens - budget, numPromptTokens, numFinishedBeforeStep };
  }

  /** Applies a step's outputs: advances computed tokens, appends sampled tokens, checks stops, streams text. */
  updateFromOutput(plan: StepPlan, outputs: readonly StepOutput[], nowMs: number): void {
    plan.scheduled.forEach(({ request, item }, index) => {
      if (request.status !== "running") return;
      request.numComputedTokens += item.tokens.length;
      const output = outputs[index];
      if (!item.shouldSample || output === undefined) return;
      if (output.token === null) {
        this.finish(request, "error", new Error("the sampler returned no token"));
        return;
      }
      request.firstTokenMs ??= nowMs;
      const state = this.text.get(request.id);
      if (state !== undefined) {
        if (state.lastTokenMs !== null) state.interTokenMs.push(nowMs - state.lastTokenMs);
        state.lastTokenMs = nowMs;
      }
      this.appendToken(request, output.token, output.logprobs === null ? [] : [output.logprobs]);
    });
  }

  /** Fails every request of a step whose batch the engine could not evaluate. */
  failStep(plan: StepPlan, error: Error): void {
    for (const { request } of plan.scheduled) {
      if (request.status === "running") this.finish(request, "error", error);
    }
  }

  /** Fails everything with `reason`, e.g. at shutdown: the clients are still there and must learn why. */
  failAll(reason: Error): void {
    for (const request of [...this.running, ...this.waiting]) this.finish(request, "error", reason);
  }

  private planChunk(request: Request, budget: number): StepItem {
    const sequenceId = request.sequenceId;
    if (sequenceId === null) throw new Error(`request ${request.id} is running without a sequence`);
    const numTokens = Math.min(request.numTokens - request.numComputedTokens, budget);
    const start = request.numComputedTokens;
    return {
      sequenceId,
      startPos: start,
      tokens: request.tokensBetween(start, start + numTokens),
      shouldSample: start + numTokens === request.numTokens,
    };
  }

  private appendToken(request: Request, token: TokenId, logprobs: OutputDelta["logprobs"]): void {
    request.outputTokens.push(token);
    const params = request.params;
    const state = this.text.get(request.id);
    if (state === undefined) throw new Error(`request ${request.id} has no text state`);
    const stopToken = isStopToken({
      token,
      isEndOfGeneration: this.engine.isEndOfGeneration(token),
      stopTokens: params.stopTokens,
      ignoreEos: params.ignoreEos,
    });
    if (stopToken) {
      state.detokenizer.flush();
      this.emit(request, state, state.detokenizer.emittedText.length, [token], logprobs);
      this.finish(request, "stop", null);
      return;
    }
    const textBefore = state.detokenizer.emittedText.length;
    state.detokenizer.push(token);
    const text = state.detokenizer.emittedText;
    const match = findStopString(text, params.stopStrings, textBefore);
    if (match !== null) {
      this.emit(request, state, match.index, [token], logprobs);
      this.finish(request, "stop", null);
      return;
    }
    const reason = lengthStop({
      numOutputTokens: request.outputTokens.length,
      maxTokens: params.maxTokens,
      numTokens: request.numTokens,
      contextSize: this.engine.info.contextSize,
    });
    if (reason !== null) state.detokenizer.flush();
    const finalText = state.detokenizer.emittedText;
    const sendUpTo = reason === null ? text.length - heldBackLength(text, params.stopStrings) : finalText.length;
    this.emit(request, state, sendUpTo, [token], logprobs);
    if (reason !== null) this.finish(request, reason, null);
  }

  private emit(request: Request, state: TextState, sendUpTo: number, tokens: TokenId[], logprobs: OutputDelta["logprobs"]): void {
    const end = Math.max(sendUpTo, state.numSentChars);
    const text = state.detokenizer.emittedText.slice(state.numSentChars, end);
    state.numSentChars = end;
    request.sink.onDelta({ text, tokens, logprobs });
  }

  private finishAborted(): number {
    const aborted = this.running.filter((request) => request.isAbortRequested);
    for (const request of aborted) this.finish(request, "abort", null);
    return aborted.length;
  }

  private finish(request: Request, reason: FinishReason, error: Error | null): void {
    if (request.status === "finished") return;
    const wasRunning = request.status === "running";
    request.status = "finished";
    request.finishReason = reason;
    removeFrom(wasRunning ? this.running : this.waiting, request);
    const state = this.text.get(request.id);
    this.text.delete(request.id);
    if (request.sequenceId !== null) this.engine.releaseSequence(request.sequenceId);
    request.sink.onFinish({
      finishReason: reason,
      error,
      numPromptTokens: request.promptTokens.length,
      numOutputTokens: request.outputTokens.length,
    });
    this.options.onRequestFinished?.({
      requestId: request.id,
      finishReason: reason,
      numPromptTokens: request.promptTokens.length,
      numOutputTokens: request.outputTokens.length,
      maxTokens: request.params.maxTokens,
      arrivalMs: request.arrivalMs,
      scheduledMs: state?.scheduledMs ?? null,
      firstTokenMs: request.firstTokenMs,
      lastTokenMs: state?.lastTokenMs ?? null,
      finishedMs: this.now(),
      interTokenMs: state?.interTokenMs ?? [],
    });
  }
}

function removeFrom(list: Request[], request: Request): void {
  const index = list.indexOf(request);
  if (index !== -1) list.splice(index, 1);
}
