/**
 * A draft model that proposes tokens for every speculating request at once: one draft engine (a small GGUF with the
 * target's tokenizer), one draft sequence per request, and each draft step is one batch for all of them — first a
 * catch-up of the tokens the draft has not seen (chunked under the batch size), then K single-token steps.
 *
 * KV: the draft pool is handed out by a block manager of its own, by the same rules as the target's: a request's
 * draft sequence gets blocks for what it will hold (catch-up plus drafts) before each draft step, gives back the
 * blocks of rejected drafts after verification, and all of them when its request finishes or is preempted. A request
 * that finds no free blocks simply gets no drafts in that step; llama.cpp never runs out of draft cells.
 */
import { KvCacheManager } from "../cache/kv-cache-manager.ts";
import {
  type Engine,
  greedySampling,
  type SamplingParams,
  type SequenceId,
  type StepItem,
  type TokenId,
} from "../engine/engine.ts";
import type { RequestId } from "../engine/ids.ts";
import type { UniformSource } from "../engine/seeded-random.ts";
import { argmax, sampleFrom, toDistribution } from "./target-distribution.ts";

/** One request asking for `numDraft` draft tokens. */
export interface DraftRequest {
  readonly id: RequestId;
  readonly sampling: SamplingParams;
  /** Prompt and output; the last token is not yet in the target's KV cache. */
  readonly allTokens: readonly TokenId[];
  readonly outputTokens: readonly TokenId[];
  readonly numDraft: number;
  readonly random: UniformSource;
}

/** Drafts and the distribution each was drawn from (null: greedy, a one-hot at the token). */
export interface Drafts {
  readonly tokens: TokenId[];
  readonly probs: (Float32Array | null)[];
}

interface DraftSequence {
  readonly sequenceId: SequenceId;
  /** Tokens of the request the draft KV cache holds. */
  numComputed: number;
}

const EWMA = 0.1;

interface ActiveDraft {
  readonly request: DraftRequest;
  readonly sequence: DraftSequence;
  readonly drafts: Drafts;
}

export class DraftModel {
  private readonly engine: Pick<
    Engine,
    "info" | "acquireSequence" | "releaseSequence" | "truncateSequence" | "step" | "dispose"
  >;
  private readonly sequences = new Map<RequestId, DraftSequence>();
  private stepMsEstimate = 0;
  private catchUpMsPerToken = 0;

  private readonly kv: KvCacheManager;

  constructor(
    engine: Pick<Engine, "info" | "acquireSequence" | "releaseSequence" | "truncateSequence" | "step" | "dispose">,
    blockSize = 16,
  ) {
    this.engine = engine;
    this.kv = new KvCacheManager({
      numBlocks: Math.floor(engine.info.kvCacheTokens / blockSize),
      blockSize,
      enablePrefixCaching: false,
    });
  }

  /** The draft pool's blocks in use, for tests and checks. */
  get numUsedBlocks(): number {
    return this.kv.stats().numUsedBlocks;
  }

  /** Mean milliseconds of one draft decode step, for the choice of K. */
  get stepMs(): number {
    return this.stepMsEstimate;
  }

  /**
   * Milliseconds the draft needs to catch up with a request of `numTokens` tokens before it can draft: requests that
   * stopped drafting fall behind, and catching up is a prefill of everything since.
   */
  catchUpMs(requestId: RequestId, numTokens: number): number {
    const behind = numTokens - (this.sequences.get(requestId)?.numComputed ?? 0);
    return Math.max(0, behind) * this.catchUpMsPerToken;
  }

  async draft(requests: readonly DraftRequest[]): Promise<Map<RequestId, Drafts>> {
    const active = requests.flatMap((request) => {
      if (request.numDraft <= 0) return [];
      const sequence = this.sequenceFor(request.id);
      if (sequence === null) return [];
      // Blocks for everything this step puts in the draft's cache: the catch-up and all drafts but the last.
      const numNew = request.allTokens.length - sequence.numComputed + request.numDraft - 1;
      if (this.kv.allocateSlots(request.id, { numNewTokens: numNew }) === null) return [];
      return [{ request, sequence, drafts: { tokens: [], probs: [] } } satisfies ActiveDraft];
    });
    if (active.length === 0) return new Map();
    try {
      return await this.draftActive(active);
    } catch (error) {
      // The draft cache of these requests is in an unknown state now: start them over.
      for (const { request } of active) this.release(request.id);
      throw error;
    }
  }

  private async draftActive(active: readonly ActiveDraft[]): Promise<Map<RequestId, Drafts>> {
    // Catch-up: everything the draft has not seen, ending with the request's latest token, whose logits give d1.
    const catchUp = active.map(({ request, sequence }) => ({
      sequence,
      tokens: request.allTokens.slice(sequence.numComputed),
    }));
    const catchUpStarted = performance.now();
    let last = await this.run(catchUp);
    const numCaughtUp = catchUp.reduce((sum, entry) => sum + entry.tokens.length, 0);
    const perToken = (performance.now() - catchUpStarted) / Math.max(1, numCaughtUp);
    this.catchUpMsPerToken =
      this.catchUpMsPerToken === 0 ? perToken : this.catchUpMsPerToken * (1 - EWMA) + perToken * EWMA;
    for (;;) {
      const next: { sequence: DraftSequence; tokens: TokenId[] }[] = [];
      active.forEach((entry, index) => {
        const logits = last[index];
        if (logits == null || entry.drafts.tokens.length >= entry.request.numDraft) return;
        const { token, probs } = this.sample(entry.request, entry.drafts.tokens, logits);
        entry.drafts.tokens.push(token);
        entry.drafts.probs.push(probs);
        if (entry.drafts.tokens.length < entry.request.numDraft)
          next.push({ sequence: entry.sequence, tokens: [token] });
      });
      if (next.length === 0) break;
      const started = performance.now();
      const results = await this.run(next);
      this.stepMsEstimate =
        this.stepMsEstimate === 0
          ? performance.now() - started
          : this.stepMsEstimate * (1 - EWMA) + (performance.now() - started) * EWMA;
      last = active.map((entry) => {
        const index = next.findIndex((item) => item.sequence === entry.sequence);
        return index < 0 ? null : (results[index] ?? null);
      });
    }
    for (const entry of active) {
      const held = [...entry.request.allTokens, ...entry.drafts.tokens];
      this.kv.commitTokens(entry.request.id, held, entry.sequence.numComputed);
    }
    return new Map(active.map((entry) => [entry.request.id, entry.drafts]));
  }

  /** The request's verified tokens are its first `numValid`: drafts beyond them leave the draft KV cache. */
  afterVerify(requestId: RequestId, numValid: number): void {
    const sequence = this.sequences.get(requestId);
    if (sequence === undefined || sequence.numComputed <= numValid) return;
    this.engine.truncateSequence(sequence.sequenceId, numValid);
    sequence.numComputed = numValid;
    if (this.kv.hasRequest(requestId)) this.kv.truncate(requestId, numValid);
  }

  release(requestId: RequestId): void {
    const sequence = this.sequences.get(requestId);
    if (sequence === undefined) return;
    this.sequences.delete(requestId);
    this.engine.releaseSequence(sequence.sequenceId);
    this.kv.free(requestId);
  }

  async dispose(): Promise<void> {
    await this.engine.dispose();
  }

  private sequenceFor(requestId: RequestId): DraftSequence | null {
    let sequence = this.sequences.get(requestId) ?? null;
    if (sequence === null) {
      // The draft samples in TypeScript; its native sampler is never used.
      const sequenceId = this.engine.acquireSequence(greedySampling());
      if (sequenceId === null) return null;
      sequence = { sequenceId, numComputed: 0 };
      this.sequences.set(requestId, sequence);
    }
    return sequence;
  }

  private sample(
    request: DraftRequest,
    drafted: readonly TokenId[],
    logits: Float32Array,
  ): { token: TokenId; probs: Float32Array | null } {
    const sampling = request.sampling;
    if (sampling.temperature <= 0 && sampling.presencePenalty === 0 && sampling.frequencyPenalty === 0)
      return { token: argmax(logits), probs: null };
    const probs = toDistribution(logits, sampling, [...request.outputTokens, ...drafted]);
    return { token: sampleFrom(probs, request.random.next()), probs };
  }

  /**
   * Evaluates each entry's tokens, in as many engine steps as the batch size needs, and returns the logits after
   * each entry's last token (null for an entry with no tokens).
   */
  private async run(
    entries: readonly { sequence: DraftSequence; tokens: readonly TokenId[] }[],
  ): Promise<(Float32Array | null)[]> {
    const results: (Float32Array | null)[] = entries.map(() => null);
    const offsets = entries.map(() => 0);
    const batchSize = this.engine.info.batchSize;
    while (entries.some((entry, index) => offsets[index]! < entry.tokens.length)) {
      let budget = batchSize;
      const items: StepItem[] = [];
      const owners: number[] = [];
      entries.forEach((entry, index) => {
        const offset = offsets[index]!;
        if (budget <= 0 || offset >= entry.tokens.length) return;
        const chunk = entry.tokens.slice(offset, offset + budget);
        const isLast = offset + chunk.length === entry.tokens.length;
        items.push({
          sequenceId: entry.sequence.sequenceId,
          startPos: entry.sequence.numComputed,
          tokens: chunk,
          shouldSample: isLast,
          returnLogits: isLast ? 1 : 0,
        });
        owners.push(index);
        budget -= chunk.length;
      });
      const outputs = await this.engine.step(items);
      outputs.forEach((output, position) => {
        const index = owners[position]!;
        const entry = entries[index]!;
        const item = items[position]!;
        entry.sequence.numComputed += item.tokens.length;
        offsets[index]! += item.tokens.length;
        if (output.logits?.[0] !== undefined) results[index] = output.logits[0];
      });
    }
    return results;
  }
}
