import assert from "node:assert/strict";
import type { FakeEngine } from "../../src/engine/fake-engine.ts";
import type { CoreOutput } from "../../src/scheduler/core-output.ts";
import { OutputProcessor, type RequestStats } from "../../src/scheduler/output-processor.ts";
import type { RequestId } from "../../src/scheduler/request.ts";
import type { Scheduler } from "../../src/scheduler/scheduler.ts";
import type { StepPlan } from "../../src/scheduler/step-budget.ts";
import type { MadeRequest } from "./requests.ts";

export interface HarnessStep {
  readonly plan: StepPlan;
  /** What the engine loop reports as the step's generated tokens. */
  readonly numGeneratedTokens: number;
}

/**
 * A scheduler and an output processor on the FakeEngine, stepped by hand exactly as the engine loop steps them:
 * plan, draft, evaluate, apply each request's output and let the processor end it at a stop string. Every step
 * checks the scheduler's invariants before and after the batch. The clock is the step's index, so token times
 * in `RequestStats` count steps.
 */
export class CoreHarness {
  readonly engine: FakeEngine;
  readonly scheduler: Scheduler;
  readonly processor: OutputProcessor;
  /** Every finished request's stats, in order. */
  readonly finished: RequestStats[] = [];

  constructor(engine: FakeEngine, scheduler: Scheduler) {
    this.engine = engine;
    this.scheduler = scheduler;
    this.processor = new OutputProcessor({
      detokenize: (tokens) => engine.detokenize(tokens),
      now: () => engine.steps.length,
      onRequestFinished: (stats) => this.finished.push(stats),
    });
  }

  /** Queues a request; false when the scheduler's queue is full. */
  add({ request, sink }: MadeRequest): boolean {
    if (!this.scheduler.add(request)) return false;
    const { id, promptTokens, params, arrivalAtMs } = request;
    this.processor.addRequest({ id, promptTokens, params, sink, arrivalAtMs });
    return true;
  }

  abort(requestId: RequestId): void {
    const finished = this.scheduler.abort(requestId);
    if (finished !== null) this.deliver([finished]);
  }

  /** One step; null when nothing was scheduled. A failed batch fails its requests, as in the engine loop. */
  async step(): Promise<HarnessStep | null> {
    const scheduled = this.scheduler.schedule();
    this.deliver(scheduled.finished);
    this.scheduler.checkInvariants();
    const numPlannedTokens = scheduled.scheduled.reduce((sum, entry) => sum + entry.item.tokens.length, 0);
    assert.equal(scheduled.numTokens, numPlannedTokens, "a plan's token count is the tokens it carries");
    const plan = await this.scheduler.prepareDrafts(scheduled);
    if (plan.scheduled.length === 0) return null;
    const nowMs = this.engine.steps.length;
    let numGeneratedTokens = 0;
    try {
      const outputs = await this.engine.step(plan.scheduled.map((entry) => entry.item));
      numGeneratedTokens = this.scheduler.updateFromOutput(plan, outputs, (output) =>
        this.processor.processOutput(output, nowMs),
      );
    } catch (error) {
      this.deliver(this.scheduler.failStep(plan, error as Error));
    }
    this.scheduler.checkInvariants();
    return { plan, numGeneratedTokens };
  }

  /** Steps until nothing runs or waits; returns the steps that ran a batch. Throws past `maxSteps` attempts. */
  async runUntilIdle(maxSteps = 10_000): Promise<number> {
    let numSteps = 0;
    for (let attempt = 0; this.scheduler.hasWork(); attempt++) {
      if (attempt >= maxSteps) throw new Error(`still busy after ${maxSteps} steps`);
      if ((await this.step()) !== null) numSteps += 1;
    }
    return numSteps;
  }

  private deliver(outputs: readonly CoreOutput[]): void {
    for (const output of outputs) this.processor.processOutput(output, this.engine.steps.length);
  }
}
