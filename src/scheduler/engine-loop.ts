/**
 * The one loop that owns every decode: plan a step, run it as one engine batch, apply the outputs, repeat.
 * Between steps it yields to the event loop, so HTTP work interleaves with decoding.
 *
 * It joins the core (scheduler and engine) to the output processor: callers submit plain values and get text
 * deltas and a finish through their sink; every output of the scheduler goes through the processor, and a stop
 * string it finds finishes the request in the scheduler at once.
 */
import type { SamplingCounters, SequenceEngine, Tokenizer } from "../engine/engine.ts";
import type { SpecStats } from "../spec/speculator.ts";
import type { CoreOutput } from "./core-output.ts";
import { OutputProcessor, type RequestStats } from "./output-processor.ts";
import { Request, type RequestId, type RequestSubmission } from "./request.ts";
import type { KvCacheState } from "./request-kv.ts";
import type { Scheduler } from "./scheduler.ts";
import type { StepPlan } from "./step-budget.ts";

/** One step, as a plain record for logs, metrics and benchmarks. */
export interface StepStats {
  /** Tokens evaluated: prompt chunks and the last sampled token of each decoding sequence. */
  readonly numTokens: number;
  /** Of those, prompt tokens (prefill). */
  readonly numPromptTokens: number;
  /** Tokens sampled in this step. */
  readonly numGeneratedTokens: number;
  readonly numSequences: number;
  readonly numRunning: number;
  readonly numWaiting: number;
  readonly durationMs: number;
  /** The KV pool after the step; its counters are cumulative. */
  readonly kvCache: KvCacheState;
  /** Speculative decoding's cumulative counts; null without speculation. */
  readonly spec: SpecStats | null;
  /** The engine's cumulative sampling counts. */
  readonly sampling: SamplingCounters;
}

export interface EngineLoopOptions {
  readonly onStep?: (stats: StepStats) => void;
  /** Receives every finished request's stats. */
  readonly onRequestFinished?: (stats: RequestStats) => void;
  /** Called when a step's batch failed; the requests of that batch are failed, the loop goes on. */
  readonly onStepError?: (error: Error) => void;
  /**
   * Called when the loop itself failed (a bug, or an engine that throws outside a step): every request is
   * failed and the loop ends; the process should report it and exit rather than hang.
   */
  readonly onFatal?: (error: Error) => void;
  /** Defaults to `performance.now`. */
  readonly now?: () => number;
}

/** Longest stretch of steps without a macrotask turn, for engines whose steps resolve without I/O. */
const MAX_MS_WITHOUT_YIELD = 20;

export class EngineLoop {
  private readonly engine: SequenceEngine;
  private readonly scheduler: Scheduler;
  private readonly processor: OutputProcessor;
  private readonly options: EngineLoopOptions;
  private readonly now: () => number;
  private wake: (() => void) | null = null;
  /** Set by every submission and abort; the loop sleeps only if none came while it planned the step it skips. */
  private isNotified = false;
  private idleWaiters: (() => void)[] = [];
  private isStopping = false;
  private running: Promise<void> | null = null;

  /** The engine's tokenizer serves the output processor; its sequences are the scheduler's. */
  constructor(engine: SequenceEngine & Tokenizer, scheduler: Scheduler, options: EngineLoopOptions = {}) {
    this.engine = engine;
    this.scheduler = scheduler;
    this.options = options;
    this.now = options.now ?? (() => performance.now());
    this.processor = new OutputProcessor({
      detokenize: (tokens) => engine.detokenize(tokens),
      now: this.now,
      ...(options.onRequestFinished === undefined ? {} : { onRequestFinished: options.onRequestFinished }),
    });
  }

  get numRunning(): number {
    return this.scheduler.numRunning;
  }

  get numWaiting(): number {
    return this.scheduler.numWaiting;
  }

  get numKvTokens(): number {
    return this.scheduler.numKvTokens;
  }

  get isPrefixCaching(): boolean {
    return this.scheduler.isPrefixCaching;
  }

  /** Between steps only: the KV operations it triggers are deferred while a step runs. */
  resetPrefixCache(): boolean {
    return this.scheduler.resetPrefixCache();
  }

  specStats(): SpecStats | null {
    return this.scheduler.specStats();
  }

  kvCacheState(): KvCacheState {
    return this.scheduler.kvCacheState();
  }

  start(): void {
    if (this.running !== null) return;
    this.running = this.run();
  }

  /**
   * Queues a request; false when the queue is full or the loop is stopping. Throws for a prompt that can never fit
   * the KV pool, and for an id already submitted.
   */
  submit(submission: RequestSubmission): boolean {
    if (this.isStopping) return false;
    if (this.processor.has(submission.id)) throw new Error(`request ${submission.id} was already submitted`);
    const request = new Request(
      submission.id,
      submission.promptTokens,
      submission.params,
      submission.arrivalAtMs ?? this.now(),
    );
    if (!this.scheduler.add(request)) return false;
    this.processor.addRequest({ ...submission, arrivalAtMs: request.arrivalAtMs });
    this.notify();
    return true;
  }

  abort(requestId: RequestId): void {
    const finished = this.scheduler.abort(requestId);
    if (finished !== null) this.deliver([finished]);
    this.notify();
  }

  /** Resolves once nothing is running or waiting. */
  drained(): Promise<void> {
    if (!this.scheduler.hasWork() || this.running === null) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Fails whatever is left with `reason` and waits for the loop to end. */
  async stop(reason: Error = new Error("the engine loop stopped")): Promise<void> {
    this.isStopping = true;
    this.deliver(this.scheduler.failAll(reason));
    this.notify();
    await this.running;
    this.running = null;
    this.resolveIdleWaiters();
  }

  private notify(): void {
    this.isNotified = true;
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private resolveIdleWaiters(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Hands outputs that carry no tokens (finishes outside a step) to the output processor. */
  private deliver(outputs: readonly CoreOutput[]): void {
    const nowMs = this.now();
    for (const output of outputs) this.processor.processOutput(output, nowMs);
  }

  private async run(): Promise<void> {
    try {
      await this.runSteps();
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      this.isStopping = true;
      this.deliver(this.scheduler.failAll(failure));
      this.resolveIdleWaiters();
      this.options.onFatal?.(failure);
    }
  }

  private async runSteps(): Promise<void> {
    let lastYieldMs = this.now();
    while (!this.isStopping) {
      this.isNotified = false;
      const scheduled = this.scheduler.schedule();
      this.deliver(scheduled.finished);
      const plan = await this.scheduler.prepareDrafts(scheduled);
      if (plan.scheduled.length === 0) {
        if (!this.scheduler.hasWork()) this.resolveIdleWaiters();
        // A request submitted while the step was planned (prepareDrafts awaits) found no sleeper to wake.
        if ((!this.scheduler.hasWork() || plan.finished.length === 0) && !this.isNotified) {
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
        }
        continue;
      }
      const stats = await this.runStep(plan);
      this.options.onStep?.(stats);
      // The next step starts at once: its decode runs on a native thread while the handlers woken by this
      // step's outputs serialise and write their chunks. A native step completes through the event loop's
      // poll phase, so I/O is served every step; an engine that resolves without I/O still yields here.
      if (this.now() - lastYieldMs > MAX_MS_WITHOUT_YIELD) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYieldMs = this.now();
      }
    }
  }

  /** Runs one planned step and applies its outputs; a failed batch fails its requests. */
  private async runStep(plan: StepPlan): Promise<StepStats> {
    const startedAtMs = this.now();
    let numGeneratedTokens = 0;
    try {
      const outputs = await this.engine.step(plan.scheduled.map((scheduled) => scheduled.item));
      this.scheduler.observeStepCost(plan.numTokens, this.now() - startedAtMs);
      const nowMs = this.now();
      numGeneratedTokens = this.scheduler.updateFromOutput(plan, outputs, (output) =>
        this.processor.processOutput(output, nowMs),
      );
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      this.deliver(this.scheduler.failStep(plan, failure));
      this.options.onStepError?.(failure);
    }
    return {
      numTokens: plan.numTokens,
      numPromptTokens: plan.numPromptTokens,
      numGeneratedTokens,
      numSequences: plan.scheduled.length,
      numRunning: this.scheduler.numRunning,
      numWaiting: this.scheduler.numWaiting,
      durationMs: this.now() - startedAtMs,
      kvCache: this.scheduler.kvCacheState(),
      spec: this.scheduler.specStats(),
      sampling: this.engine.samplingCounters(),
    };
  }
}
