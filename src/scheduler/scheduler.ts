/**
 * The continuous-batching scheduler, in the shape of vLLM's v1 scheduler: no prefill or decode phase, every
 * request has `numComputedTokens` catching up with its tokens, and one token budget covers decodes and prompt
 * chunks alike. `schedule()` plans a step; `updateFromOutput()` applies what the engine returned.
 *
 * KV memory comes from the block manager: every scheduled chunk first gets its blocks. When the pool is dry, the
 * lowest-priority, latest-arrived running request is preempted (its blocks freed, requeued at the front, its
 * tokens recomputed later, mostly from the prefix cache) — a request never fails for lack of KV memory.
 *
 * The scheduler deals in tokens: it finishes requests at stop tokens, max_tokens and a full context, and reports
 * every request's progress as a `CoreOutput`. Text and stop strings are the output processor's.
 */
import type { SequenceEngine, SequenceId, StepItem, StepOutput, TokenId } from "../engine/engine.ts";
import type { SpecStats } from "../spec/speculator.ts";
import { type CoreOutput, type CoreOutputHandler, coreOutputOf } from "./core-output.ts";
import { pickVictim } from "./pick-victim.ts";
import { type FinishReason, QueueTimeoutError, type Request, type RequestId } from "./request.ts";
import { type Admission, type KvCacheState, RequestKv } from "./request-kv.ts";
import { RequestQueue } from "./request-queue.ts";
import { appendUntilStop, sampledTokens } from "./sampled-tokens.ts";
import type { SchedulerOptions } from "./scheduler-options.ts";
import { waitsForSharedPrefix } from "./shared-prefix-in-flight.ts";
import { type DraftStep, Speculation } from "./speculation.ts";
import { StepBudget, type StepPlan } from "./step-budget.ts";

// The metrics import these records from here.
export type { RequestStats } from "./output-processor.ts";
export type { KvCacheState } from "./request-kv.ts";
export type { SchedulerOptions } from "./scheduler-options.ts";
export type { ScheduledItem, StepPlan } from "./step-budget.ts";

export class Scheduler {
  private readonly engine: SequenceEngine;
  private readonly options: SchedulerOptions;
  private readonly now: () => number;
  private readonly waiting = new RequestQueue();
  private readonly running: Request[] = [];
  private readonly kv: RequestKv;
  private readonly speculation: Speculation;
  private numPreemptions = 0;

  constructor(engine: SequenceEngine, options: SchedulerOptions) {
    this.engine = engine;
    this.now = options.now ?? (() => performance.now());
    this.options = {
      ...options,
      maxNumSequences: Math.min(options.maxNumSequences, engine.info.numSequences),
      maxNumBatchedTokens: Math.min(options.maxNumBatchedTokens, engine.info.batchSize),
    };
    if (this.options.maxNumBatchedTokens < this.options.maxNumSequences) {
      throw new RangeError("the token budget must cover one token of every running request");
    }
    this.kv = new RequestKv(engine, {
      blockSize: options.blockSize ?? 16,
      enablePrefixCaching: options.enablePrefixCaching ?? true,
      maxSavedPrefixTokens: options.maxSavedPrefixTokens ?? 2 * engine.info.kvCacheTokens,
    });
    this.speculation = new Speculation({ speculator: options.speculator ?? null, onDraftError: options.onDraftError });
  }

  /** Most tokens one request can ever hold: its context, bounded by the whole pool. */
  get maxRequestTokens(): number {
    return Math.min(this.engine.info.contextSize, this.kv.numPoolTokens);
  }

  get isPrefixCaching(): boolean {
    return this.kv.isPrefixCaching;
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

  kvCacheState(): KvCacheState {
    return this.kv.state(this.numPreemptions);
  }

  specStats(): SpecStats | null {
    return this.speculation.stats();
  }

  /** How long a step of `numTokens` took, for the speculator's choice of draft lengths. */
  observeStepCost(numTokens: number, durationMs: number): void {
    this.speculation.observeStep(numTokens, durationMs);
  }

  /** Drops every cached prefix not in use (and the saved copies of their cells); false if one is in use. */
  resetPrefixCache(): boolean {
    return this.kv.resetPrefixCache();
  }

  /** Throws on any inconsistency between the block manager, the cell holders and the requests; for tests. */
  checkInvariants(): void {
    this.kv.checkInvariants(this.running, [...this.waiting]);
  }

  /** Queues a request; returns false when the waiting queue is full. */
  add(request: Request): boolean {
    if (this.waiting.length >= this.options.maxNumWaiting) return false;
    if (!this.kv.canEverFit(request.promptTokens.length + 1)) {
      throw new RangeError(`a prompt of ${request.promptTokens.length} tokens can never fit the KV pool`);
    }
    this.waiting.push(request);
    return true;
  }

  /**
   * Aborts a request. A waiting one is finished at once (its output is returned), so it stops holding a queue
   * place; a running one is finished and its sequence freed at the next `schedule()`, never in the middle of a step.
   */
  abort(requestId: RequestId): CoreOutput | null {
    const waiting = this.waiting.find(requestId);
    if (waiting !== undefined) return this.finish(waiting, "abort", null);
    const running = this.running.find((request) => request.id === requestId);
    if (running !== undefined) running.isAbortRequested = true;
    return null;
  }

  schedule(): StepPlan {
    const finished = [...this.finishAborted(), ...this.expireWaiting()];
    // Decoding requests first: each owes exactly one token, so none is starved by a long prompt.
    const decoding = this.running.filter((request) => request.numComputedTokens >= request.promptTokens.length);
    const prefilling = this.running.filter((request) => request.numComputedTokens < request.promptTokens.length);
    const budget = new StepBudget(
      this.options.maxNumBatchedTokens,
      this.options.maxNumPrefillTokens,
      decoding.length > 0,
    );
    this.scheduleRunning(decoding, prefilling, budget);
    // As in vLLM, nothing new is admitted in a step that had to preempt: the pool is full.
    if (!budget.hasPreempted) this.scheduleWaiting(budget);
    return budget.plan(finished);
  }

  /** Draft mode: fills in the draft tokens `schedule()` left pending; see `Speculation.prepareDrafts`. */
  prepareDrafts(plan: StepPlan): Promise<StepPlan> {
    return this.speculation.prepareDrafts(plan);
  }

  /**
   * Applies a step's outputs in plan order: advances computed tokens, verifies drafts, appends the sampled tokens
   * and finishes requests at token-level stops. Each request's output goes to `onOutput` as soon as it is applied;
   * when that reports a stop string, the request finishes there, before the next one is applied. Returns the
   * number of tokens generated (up to the stops).
   */
  updateFromOutput(plan: StepPlan, outputs: readonly StepOutput[], onOutput: CoreOutputHandler): number {
    let numGenerated = 0;
    plan.scheduled.forEach(({ request, item, drafts }, index) => {
      if (request.status !== "running") return;
      request.numComputedTokens += item.tokens.length - drafts.length;
      this.kv.commit(request);
      const output = outputs[index];
      if (!item.shouldSample || output === undefined) return;
      const tokens = sampledTokens(request, drafts, output, this.speculation, this.engine);
      if (tokens === null) {
        onOutput(this.finish(request, "error", new Error("the sampler returned no token")));
        return;
      }
      const appended = appendUntilStop(request, tokens, this.engine);
      if (appended.stop !== null) this.finish(request, appended.stop, null);
      const numBeforeStop = onOutput(coreOutputOf(request, appended.tokens, output.logprobs, null));
      numGenerated += numBeforeStop ?? appended.tokens.length;
      // The output processor has finished it already; the core lets go of it.
      if (numBeforeStop !== null) this.finish(request, "stop", null);
      // Accepted drafts are in the KV cache now, and verified: they may be cached.
      else if (tokens.length > 1 && request.status === "running") this.kv.commit(request);
    });
    return numGenerated;
  }

  /** Fails every request of a step whose batch the engine could not evaluate. */
  failStep(plan: StepPlan, error: Error): CoreOutput[] {
    return plan.scheduled
      .filter(({ request }) => request.status === "running")
      .map(({ request }) => this.finish(request, "error", error));
  }

  /** Fails everything with `reason`, e.g. at shutdown: the clients are still there and must learn why. */
  failAll(reason: Error): CoreOutput[] {
    return [...this.running, ...this.waiting].map((request) => this.finish(request, "error", reason));
  }

  private scheduleRunning(decoding: readonly Request[], prefilling: readonly Request[], budget: StepBudget): void {
    // What the step carries before drafts, for the speculator's cost model.
    const step: DraftStep = {
      numTokens: Math.min(
        budget.numLeft,
        decoding.length + prefilling.reduce((sum, request) => sum + request.numTokens - request.numComputedTokens, 0),
      ),
      numSequences: this.running.length,
    };
    for (const request of [...decoding, ...prefilling]) {
      if (budget.numLeft <= 0) break;
      if (request.status !== "running") continue;
      const isPrefill = request.numComputedTokens < request.promptTokens.length;
      if (isPrefill && budget.numPrefillLeft <= 0) continue;
      const drafts = this.speculation.proposeDrafts(request, budget.numLeft, this.maxRequestTokens, step);
      step.numTokens += drafts.length;
      const numNewTokens =
        drafts.length > 0
          ? 1 + drafts.length
          : Math.min(
              request.numTokens - request.numComputedTokens,
              budget.numLeft,
              isPrefill ? budget.numPrefillLeft : budget.numLeft,
            );
      if (!this.allocateRunning(request, numNewTokens, budget)) continue;
      budget.add({ request, item: this.planChunk(request, numNewTokens, drafts), drafts }, isPrefill);
    }
  }

  /** Blocks for a running request's chunk, preempting the least urgent running requests (maybe itself) for them. */
  private allocateRunning(request: Request, numNewTokens: number, budget: StepBudget): boolean {
    const sequenceId = this.sequenceOf(request);
    while (!this.kv.allocate(request, sequenceId, numNewTokens)) {
      const victim = pickVictim(this.running, null);
      if (victim === null) return false;
      this.preempt(victim, budget);
      if (victim === request) return false;
    }
    return true;
  }

  /**
   * Admits waiting requests in priority order while the budget, sequences and blocks last. One that shares a prompt
   * prefix with a running request still computing it waits for those blocks (see `waitsForSharedPrefix`).
   */
  private scheduleWaiting(budget: StepBudget): void {
    budget.startAdmission();
    this.waiting.sort();
    let index = 0;
    for (
      let request = this.waiting.at(index);
      request !== undefined && budget.numAdmitLeft > 0;
      request = this.waiting.at(index)
    ) {
      if (this.kv.isPrefixCaching && waitsForSharedPrefix(request, this.running, this.kv.blockSize)) {
        index++;
        continue;
      }
      if (this.running.length >= this.options.maxNumSequences) {
        // A full house yields only to strictly more urgent work.
        if (!this.preemptFor(request, budget)) break;
        continue;
      }
      const sequenceId = this.engine.acquireSequence(request.params.sampling, request.outputTokens);
      if (sequenceId === null) break;
      const admission = this.kv.admit(request, sequenceId, budget.numAdmitLeft);
      if (admission === null) {
        this.engine.releaseSequence(sequenceId);
        if (!this.preemptFor(request, budget)) break;
        continue;
      }
      this.waiting.remove(request);
      this.start(request, sequenceId, admission);
      budget.admit({ request, item: this.planChunk(request, admission.numNewTokens, []), drafts: [] });
    }
  }

  /**
   * Makes room for waiting `request` by preempting the least urgent running request that is strictly less urgent;
   * false when there is none.
   */
  private preemptFor(request: Request, budget: StepBudget): boolean {
    const victim = pickVictim(this.running, request.priority);
    if (victim === null) return false;
    this.preempt(victim, budget);
    // The victim went back to the front; it is less urgent than `request`, so sorting puts it behind.
    this.waiting.sort();
    return true;
  }

  private preempt(request: Request, budget: StepBudget): void {
    budget.onPreempted(request);
    this.speculation.onPreempt(request);
    this.kv.release(request);
    request.sequenceId = null;
    removeFrom(this.running, request);
    request.status = "waiting";
    request.numComputedTokens = 0;
    request.numPreemptions += 1;
    this.numPreemptions += 1;
    this.waiting.pushFront(request);
  }

  private start(request: Request, sequenceId: SequenceId, admission: Admission): void {
    request.sequenceId = sequenceId;
    request.status = "running";
    request.numComputedTokens = admission.numPrefixTokens;
    this.running.push(request);
    if (request.scheduledAtMs === null) {
      request.numCachedTokens = Math.min(admission.numPrefixTokens, request.promptTokens.length);
      request.scheduledAtMs = this.now();
    }
  }

  private planChunk(request: Request, numTokens: number, drafts: readonly TokenId[]): StepItem {
    const sequenceId = this.sequenceOf(request);
    const start = request.numComputedTokens;
    const end = start + numTokens - drafts.length;
    const shouldSample = end === request.numTokens;
    const item: StepItem = {
      sequenceId,
      startPos: start,
      tokens: [...request.tokensBetween(start, end), ...drafts],
      shouldSample,
    };
    // Under speculation the speculator samples, from the logits after the last real token and after each draft.
    const returnLogits = shouldSample ? this.speculation.logitsToReturn(request, drafts.length) : null;
    return returnLogits === null ? item : { ...item, returnLogits };
  }

  private finishAborted(): CoreOutput[] {
    const aborted = this.running.filter((request) => request.isAbortRequested);
    return aborted.map((request) => this.finish(request, "abort", null));
  }

  private expireWaiting(): CoreOutput[] {
    const timeoutMs = this.options.queueTimeoutMs ?? 0;
    if (timeoutMs <= 0) return [];
    const now = this.now();
    const expired = this.waiting.expired(now, timeoutMs);
    return expired.map((request) => this.finish(request, "error", new QueueTimeoutError(now - request.arrivalAtMs)));
  }

  /** Ends a request in the core: out of its queue, its drafts forgotten, its blocks and sequence freed. */
  private finish(request: Request, reason: FinishReason, error: Error | null): CoreOutput {
    if (request.status !== "finished") {
      if (request.status === "running") removeFrom(this.running, request);
      else this.waiting.remove(request);
      request.status = "finished";
      request.finishReason = reason;
      this.speculation.forget(request);
      this.kv.release(request);
      request.sequenceId = null;
    }
    return coreOutputOf(request, [], null, error);
  }

  private sequenceOf(request: Request): SequenceId {
    if (request.sequenceId === null) throw new Error(`request ${request.id} is running without a sequence`);
    return request.sequenceId;
  }
}

function removeFrom(list: Request[], request: Request): void {
  const index = list.indexOf(request);
  if (index !== -1) list.splice(index, 1);
}
