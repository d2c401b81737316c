/**
 * The continuous-batching scheduler, in the shape of vLLM's v1 scheduler: no prefill or decode phase, every
 * request has `numComputedTokens` catching up with its tokens, and one token budget covers decodes and prompt
 * chunks alike. `schedule()` plans a step; `updateFromOutput()` applies what the engine returned.
 *
 * KV memory comes from the block manager: every scheduled chunk first gets its blocks. When the pool is dry, the
 * lowest-priority, latest-arrived running request is preempted (its blocks freed, requeued at the front, its
 * tokens recomputed later, mostly from the prefix cache) — a request never fails for lack of KV memory.
 */

import type { KvBlock } from "../cache/block.ts";
import { CellHolders } from "../cache/cell-holders.ts";
import { type CachedPrefix, KvCacheManager } from "../cache/kv-cache-manager.ts";
import type { Engine, SequenceId, StepItem, StepOutput, TokenId } from "../engine/engine.ts";
import { PENDING_DRAFT, type SpecRequest, type SpecStats, type Speculator } from "../spec/speculator.ts";
import { IncrementalDetokenizer } from "./incremental-detokenizer.ts";
import { type FinishReason, type OutputDelta, QueueTimeoutError, type Request, type RequestId } from "./request.ts";
import { findStopString, heldBackLength, isStopToken, lengthStop } from "./stop-checker.ts";

/** The part of `Engine` the scheduler needs, so tests can hand it a model-free engine. */
export type SchedulerEngine = Pick<
  Engine,
  | "info"
  | "acquireSequence"
  | "releaseSequence"
  | "truncateSequence"
  | "shareCells"
  | "saveCells"
  | "restoreCells"
  | "isEndOfGeneration"
  | "detokenize"
>;

/** The KV pool's state for metrics. */
export interface KvCacheState {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly numUsedBlocks: number;
  /** Free blocks that still hold a cached prefix. */
  readonly numCachedBlocks: number;
  /** 0..1, used blocks over all blocks. */
  readonly usage: number;
  readonly prefixQueriedTokens: number;
  readonly prefixHitTokens: number;
  readonly numPreemptions: number;
  /** Cached prefixes copied out of the pool to host memory, and the bytes they take. */
  readonly numSavedPrefixes: number;
  readonly savedPrefixBytes: number;
}

/** One finished request, as a plain record for metrics and tests. Times are the scheduler clock's milliseconds. */
export interface RequestStats {
  readonly requestId: RequestId;
  readonly finishReason: FinishReason;
  readonly numPromptTokens: number;
  readonly numOutputTokens: number;
  readonly numCachedTokens: number;
  readonly numPreemptions: number;
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
  /**
   * Most prompt tokens in a step that also carries decoding requests, so a long prompt's chunks do not stretch
   * the decoders' time between tokens. Defaults to `maxNumBatchedTokens` (no separate limit).
   */
  readonly maxNumPrefillTokens?: number;
  /** Most requests waiting; `add` refuses beyond it. */
  readonly maxNumWaiting: number;
  /** A request waiting longer fails with `QueueTimeoutError`; 0 or absent waits without limit. */
  readonly queueTimeoutMs?: number;
  /** Tokens per KV block. Defaults to 16. */
  readonly blockSize?: number;
  /** Reuse cached prompt prefixes; only with the engine's shared pool. Defaults to true. */
  readonly enablePrefixCaching?: boolean;
  /**
   * Most tokens of finished requests' cached prefixes kept in host memory, out of the pool. Defaults to twice the
   * pool's cells: a saved copy keeps its size when eviction cuts its chain, so the pool's worth of cached blocks
   * needs some slack; host memory then holds at most twice the pool's KV bytes.
   */
  readonly maxSavedPrefixTokens?: number;
  /**
   * Speculative decoding: requests without logprobs get draft tokens and are sampled from raw logits by the
   * speculator. Needs an engine that returns logits. Defaults to none.
   */
  readonly speculator?: Speculator | null;
  /** Told about every failed draft-model step (counted in `SpecStats.numDraftFailures`); it costs only drafts. */
  readonly onDraftError?: (error: Error) => void;
  /** Defaults to `performance.now`. */
  readonly now?: () => number;
  readonly onRequestFinished?: (stats: RequestStats) => void;
}

export interface ScheduledItem {
  readonly request: Request;
  readonly item: StepItem;
  /** Draft tokens at the end of `item.tokens`, to verify from its logits. */
  readonly drafts: readonly TokenId[];
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
  readonly kv: KvCacheManager;
  private readonly holders: CellHolders<KvBlock>;
  private numPreemptions = 0;

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
    const blockSize = options.blockSize ?? 16;
    this.holders = new CellHolders<KvBlock>(engine, {
      blockSize,
      numCells: engine.info.kvCacheTokens,
      maxSavedTokens: options.maxSavedPrefixTokens ?? 2 * engine.info.kvCacheTokens,
      uncache: (block) => this.kv.uncache(block),
    });
    this.kv = new KvCacheManager({
      numBlocks: Math.floor(engine.info.kvCacheTokens / blockSize),
      blockSize,
      enablePrefixCaching: engine.info.isKvShared && (options.enablePrefixCaching ?? true),
      onEvict: (block) => this.holders.onEvict(block),
    });
    if (this.kv.numBlocks < 1)
      throw new RangeError(`a KV pool of ${engine.info.kvCacheTokens} tokens holds no block of ${blockSize}`);
  }

  /** Most tokens one request can ever hold: its context, bounded by the whole pool. */
  get maxRequestTokens(): number {
    return Math.min(this.engine.info.contextSize, this.kv.numBlocks * this.kv.blockSize);
  }

  /**
   * Draft mode: fills in the draft tokens `schedule()` left pending, drafted by the draft model for all requests
   * of the step at once. A failed draft step costs the step its drafts, never a request: it is counted in
   * `SpecStats` and reported to `onDraftError`.
   */
  async prepareDrafts(plan: StepPlan): Promise<StepPlan> {
    const speculator = this.options.speculator;
    const pending = plan.scheduled.filter((entry) => entry.drafts.some((token) => token === PENDING_DRAFT));
    if (speculator == null || pending.length === 0) return plan;
    let drafted: Map<string, TokenId[]>;
    try {
      drafted = await speculator.draftPending(
        pending.map(({ request, drafts }) => ({ request: specRequestOf(request), numDraft: drafts.length })),
      );
    } catch (error) {
      this.options.onDraftError?.(error instanceof Error ? error : new Error(String(error)));
      drafted = new Map();
    }
    const scheduled = plan.scheduled.map((entry): ScheduledItem => {
      if (!pending.includes(entry)) return entry;
      const drafts = drafted.get(entry.request.id) ?? [];
      const realTokens = entry.item.tokens.slice(0, entry.item.tokens.length - entry.drafts.length);
      return {
        ...entry,
        drafts,
        item: { ...entry.item, tokens: [...realTokens, ...drafts], returnLogits: 1 + drafts.length },
      };
    });
    return { ...plan, scheduled, numTokens: scheduled.reduce((sum, entry) => sum + entry.item.tokens.length, 0) };
  }

  /** Drops every cached prefix not in use (and the saved copies of their cells); false if one is in use. */
  resetPrefixCache(): boolean {
    return this.kv.resetPrefixCache();
  }

  specStats(): SpecStats | null {
    return this.options.speculator?.stats() ?? null;
  }

  /** How long a step of `numTokens` took, for the speculator's choice of draft lengths. */
  observeStepCost(numTokens: number, durationMs: number): void {
    this.options.speculator?.observeStep(numTokens, durationMs);
  }

  kvCacheState(): KvCacheState {
    const stats = this.kv.stats();
    return {
      numBlocks: stats.numBlocks,
      blockSize: stats.blockSize,
      numUsedBlocks: stats.numUsedBlocks,
      numCachedBlocks: stats.numCachedFreeBlocks,
      usage: stats.usage,
      prefixQueriedTokens: stats.queriedTokens,
      prefixHitTokens: stats.hitTokens,
      numPreemptions: this.numPreemptions,
      numSavedPrefixes: this.holders.numSaved,
      savedPrefixBytes: this.holders.numSavedBytes,
    };
  }

  /** Throws on any inconsistency between the block manager, the cell holders and the requests; for tests. */
  checkInvariants(): void {
    this.kv.checkInvariants();
    this.holders.checkInvariants(this.kv.blockStates());
    for (const request of this.running) {
      if (!this.kv.hasRequest(request.id)) throw new Error(`running request ${request.id} holds no blocks`);
      if (request.sequenceId === null) throw new Error(`running request ${request.id} has no sequence`);
    }
    for (const request of this.waiting) {
      if (this.kv.hasRequest(request.id)) throw new Error(`waiting request ${request.id} still holds blocks`);
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
    if (!this.kv.canEverFit(request.promptTokens.length + 1)) {
      throw new RangeError(`a prompt of ${request.promptTokens.length} tokens can never fit the KV pool`);
    }
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
    const numFinishedBeforeStep = this.finishAborted() + this.expireWaiting();
    let budget = this.options.maxNumBatchedTokens;
    const scheduled: ScheduledItem[] = [];
    let hasPreempted = false;
    const preempt = (victim: Request): void => {
      const index = scheduled.findIndex((entry) => entry.request === victim);
      if (index >= 0) budget += scheduled.splice(index, 1)[0]!.item.tokens.length;
      this.preempt(victim);
      hasPreempted = true;
    };
    // Decoding requests first: each owes exactly one token, so none is starved by a long prompt.
    const decoding = this.running.filter((request) => request.numComputedTokens >= request.promptTokens.length);
    const prefilling = this.running.filter((request) => request.numComputedTokens < request.promptTokens.length);
    // What the step carries before drafts, for the speculator's cost model.
    const specStep = {
      numTokens: Math.min(
        budget,
        decoding.length + prefilling.reduce((sum, request) => sum + request.numTokens - request.numComputedTokens, 0),
      ),
      numSequences: this.running.length,
    };
    // With decoders in the step, prompt chunks share a budget of their own (vLLM's bounded chunked prefill).
    let prefillBudget = decoding.length > 0 ? (this.options.maxNumPrefillTokens ?? budget) : budget;
    for (const request of [...decoding, ...prefilling]) {
      if (budget <= 0) break;
      if (request.status !== "running") continue;
      const isPrefill = request.numComputedTokens < request.promptTokens.length;
      if (isPrefill && prefillBudget <= 0) continue;
      const drafts = this.proposeDrafts(request, budget, specStep);
      specStep.numTokens += drafts.length;
      const numNewTokens =
        drafts.length > 0
          ? 1 + drafts.length
          : Math.min(request.numTokens - request.numComputedTokens, budget, isPrefill ? prefillBudget : budget);
      let blocks = this.kv.allocateSlots(request.id, { numNewTokens });
      while (blocks === null) {
        const victim = this.pickVictim(null);
        if (victim === null) break;
        preempt(victim);
        if (victim === request) break;
        blocks = this.kv.allocateSlots(request.id, { numNewTokens });
      }
      if (blocks === null) continue;
      this.holders.onAllocated(this.sequenceOf(request), blocks);
      const item = this.planChunk(request, numNewTokens, drafts);
      scheduled.push({ request, item, drafts });
      budget -= item.tokens.length;
      if (isPrefill) prefillBudget -= item.tokens.length;
    }
    // As in vLLM, nothing new is admitted in a step that had to preempt: the pool is full.
    if (!hasPreempted)
      budget =
        this.admitWaiting(Math.min(budget, prefillBudget), scheduled, preempt) + Math.max(0, budget - prefillBudget);
    const numPromptTokens = scheduled.reduce(
      (sum, { request, item }) =>
        sum + Math.max(0, Math.min(request.promptTokens.length, item.startPos + item.tokens.length) - item.startPos),
      0,
    );
    return { scheduled, numTokens: this.options.maxNumBatchedTokens - budget, numPromptTokens, numFinishedBeforeStep };
  }

  /** Admits waiting requests in priority order while budget, slots and blocks last; returns the budget left. */
  private admitWaiting(budget: number, scheduled: ScheduledItem[], preempt: (victim: Request) => void): number {
    this.sortWaiting();
    while (budget > 0 && this.waiting.length > 0) {
      const request = this.waiting[0]!;
      if (this.running.length >= this.options.maxNumRunning) {
        // A full house yields only to strictly more urgent work.
        const victim = this.pickVictim(request.priority);
        if (victim === null) break;
        preempt(victim);
        // The victim went back to the front; it is less urgent than `request`, so sorting puts it behind.
        this.sortWaiting();
        continue;
      }
      const sequenceId = this.engine.acquireSequence(request.params.sampling, request.outputTokens);
      if (sequenceId === null) break;
      const prefix = this.forkablePrefix(request.allTokens);
      const numNewTokens = Math.min(request.numTokens - prefix.numTokens, budget);
      const blocks = this.kv.allocateSlots(request.id, { numNewTokens, cachedPrefix: prefix });
      if (blocks === null) {
        this.engine.releaseSequence(sequenceId);
        const victim = this.pickVictim(request.priority);
        if (victim === null) break;
        preempt(victim);
        // The victim went back to the front; it is less urgent than `request`, so sorting puts it behind.
        this.sortWaiting();
        continue;
      }
      this.waiting.shift();
      this.start(request, sequenceId, prefix, blocks);
      const item = this.planChunk(request, numNewTokens, []);
      scheduled.push({ request, item, drafts: [] });
      budget -= item.tokens.length;
    }
    return budget;
  }

  private start(request: Request, sequenceId: SequenceId, prefix: CachedPrefix, blocks: readonly KvBlock[]): void {
    // Counted once per request, as vLLM does; a resumed request's own recomputation is not a cache query.
    if (request.numPreemptions === 0) this.kv.recordPrefixQuery(request.numTokens, prefix.numTokens);
    this.holders.fork(sequenceId, prefix.blocks);
    this.holders.onAllocated(sequenceId, blocks);
    request.sequenceId = sequenceId;
    request.status = "running";
    request.numComputedTokens = prefix.numTokens;
    this.running.push(request);
    if (!this.text.has(request.id)) {
      request.numCachedTokens = Math.min(prefix.numTokens, request.promptTokens.length);
      const detokenizer = new IncrementalDetokenizer((tokens) => this.engine.detokenize(tokens), request.promptTokens);
      this.text.set(request.id, {
        detokenizer,
        numSentChars: 0,
        scheduledMs: this.now(),
        lastTokenMs: null,
        interTokenMs: [],
      });
    }
  }

  private isSpeculative(request: Request): boolean {
    return this.options.speculator != null && request.params.sampling.topLogprobs === null;
  }

  /** Drafts for a decoding request under speculation; none otherwise, or when they would not fit. */
  private proposeDrafts(
    request: Request,
    budget: number,
    step: { readonly numTokens: number; readonly numSequences: number },
  ): TokenId[] {
    const speculator = this.options.speculator;
    if (speculator == null || !this.isSpeculative(request) || request.numComputedTokens !== request.numTokens - 1)
      return [];
    // Room in the step, in max_tokens (the last token comes from verification) and in the context.
    const limit = Math.min(
      budget - 1,
      request.params.maxTokens - request.outputTokens.length - 1,
      this.maxRequestTokens - request.numTokens - 1,
    );
    return limit > 0 ? speculator.propose(specRequestOf(request), limit, step) : [];
  }

  /** The cached prefix of `tokens` whose cells can be forked now; the rest of a longer one is recomputed. */
  private forkablePrefix(tokens: readonly TokenId[]): CachedPrefix {
    const prefix = this.kv.findCachedPrefix(tokens);
    const numBlocks = this.holders.numForkable(prefix.blocks);
    if (numBlocks === prefix.blocks.length) return prefix;
    return {
      blocks: prefix.blocks.slice(0, numBlocks),
      hashes: prefix.hashes.slice(0, numBlocks),
      numTokens: numBlocks * this.kv.blockSize,
    };
  }

  /**
   * The running request to preempt: the lowest priority (highest value), latest arrival. With `above`, only one
   * strictly less urgent than that priority qualifies.
   */
  private pickVictim(above: number | null): Request | null {
    let victim: Request | null = null;
    for (const request of this.running) {
      if (above !== null && request.priority <= above) continue;
      if (
        victim === null ||
        request.priority > victim.priority ||
        (request.priority === victim.priority && request.arrivalMs >= victim.arrivalMs)
      ) {
        victim = request;
      }
    }
    return victim;
  }

  private preempt(request: Request): void {
    this.options.speculator?.onPreempt(request.id);
    this.releaseKv(request);
    removeFrom(this.running, request);
    request.status = "waiting";
    request.numComputedTokens = 0;
    request.numPreemptions += 1;
    this.numPreemptions += 1;
    this.waiting.unshift(request);
  }

  private releaseKv(request: Request): void {
    const sequenceId = request.sequenceId;
    this.kv.free(request.id);
    if (sequenceId !== null) this.holders.release(sequenceId, this.kv.enablePrefixCaching);
    request.sequenceId = null;
  }

  /** Priority first, then the order they are in: arrivals append, preempted requests go back to the front. */
  private sortWaiting(): void {
    if (this.waiting.some((request) => request.priority !== 0)) this.waiting.sort((a, b) => a.priority - b.priority);
  }

  private expireWaiting(): number {
    const timeoutMs = this.options.queueTimeoutMs ?? 0;
    if (timeoutMs <= 0) return 0;
    const now = this.now();
    const expired = this.waiting.filter(
      (request) => request.numPreemptions === 0 && now - request.arrivalMs > timeoutMs,
    );
    for (const request of expired) this.finish(request, "error", new QueueTimeoutError(now - request.arrivalMs));
    return expired.length;
  }

  private sequenceOf(request: Request): SequenceId {
    if (request.sequenceId === null) throw new Error(`request ${request.id} is running without a sequence`);
    return request.sequenceId;
  }

  /**
   * Applies a step's outputs: advances computed tokens, verifies drafts, appends sampled tokens, checks stops,
   * streams text. Returns the number of tokens generated.
   */
  updateFromOutput(plan: StepPlan, outputs: readonly StepOutput[], nowMs: number): number {
    let numGenerated = 0;
    plan.scheduled.forEach(({ request, item, drafts }, index) => {
      if (request.status !== "running") return;
      request.numComputedTokens += item.tokens.length - drafts.length;
      this.kv.commitTokens(request.id, request.allTokens, request.numComputedTokens);
      const output = outputs[index];
      if (!item.shouldSample || output === undefined) return;
      const tokens = this.tokensOf(request, drafts, output);
      if (tokens === null) return;
      request.firstTokenMs ??= nowMs;
      const state = this.text.get(request.id);
      if (state !== undefined) {
        if (state.lastTokenMs !== null) state.interTokenMs.push(nowMs - state.lastTokenMs);
        state.lastTokenMs = nowMs;
      }
      for (const token of tokens) {
        this.appendToken(request, token, output.logprobs === null ? [] : [output.logprobs]);
        numGenerated += 1;
        if (request.status !== "running") return;
      }
      // Accepted drafts are in the KV cache now, and verified: they may be cached.
      if (tokens.length > 1) this.kv.commitTokens(request.id, request.allTokens, request.numComputedTokens);
    });
    return numGenerated;
  }

  /** The tokens one output yields: the sampled one, or verified drafts plus one; null when the request failed. */
  private tokensOf(request: Request, drafts: readonly TokenId[], output: StepOutput): TokenId[] | null {
    const speculator = this.options.speculator;
    if (output.logits != null && speculator != null) {
      const result = speculator.verify(specRequestOf(request), drafts, output.logits);
      request.numComputedTokens += result.numAccepted;
      // Rejected drafts' cells go now; their blocks stay with the request, which grows into them.
      if (result.numAccepted < drafts.length)
        this.engine.truncateSequence(this.sequenceOf(request), request.numComputedTokens);
      return result.tokens;
    }
    if (output.token === null) {
      this.finish(request, "error", new Error("the sampler returned no token"));
      return null;
    }
    return [output.token];
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
    return shouldSample && this.isSpeculative(request) ? { ...item, returnLogits: 1 + drafts.length } : item;
  }

  private appendToken(request: Request, token: TokenId, logprobs: OutputDelta["logprobs"]): void {
    request.appendOutput(token);
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

  private emit(
    request: Request,
    state: TextState,
    sendUpTo: number,
    tokens: TokenId[],
    logprobs: OutputDelta["logprobs"],
  ): void {
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
    this.options.speculator?.forget(request.id);
    this.releaseKv(request);
    request.sink.onFinish({
      finishReason: reason,
      error,
      numPromptTokens: request.promptTokens.length,
      numOutputTokens: request.outputTokens.length,
      numCachedTokens: request.numCachedTokens,
    });
    this.options.onRequestFinished?.({
      requestId: request.id,
      finishReason: reason,
      numPromptTokens: request.promptTokens.length,
      numOutputTokens: request.outputTokens.length,
      numCachedTokens: request.numCachedTokens,
      numPreemptions: request.numPreemptions,
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

function specRequestOf(request: Request): SpecRequest {
  return {
    id: request.id,
    sampling: request.params.sampling,
    allTokens: request.allTokens,
    outputTokens: request.outputTokens,
  };
}
