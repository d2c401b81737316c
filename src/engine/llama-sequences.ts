/**
 * The context's sequence slots and what each holds: a native sampler with the tokens it sampled, and KV cells.
 * Cells are shared between sequences and copied to host memory and back through the addon patch, on the shared
 * pool only.
 *
 * KV changes asked for during a step wait for it to end: the batch being decoded may refer to those cells.
 */
import { combinedFailure } from "./combined-failure.ts";
import type { SamplingParams, SavedCells, SequenceId, TokenId } from "./engine.ts";
import type { GrammarFollower } from "./grammar-follower.ts";
import {
  isPatchedContext,
  type LlamaInternals,
  type NativeContext,
  type NativeGrammarState,
  type NativeSampler,
  type PatchedNativeContext,
} from "./llama-internals.ts";
import type { NativeLogSink } from "./llama-loader.ts";
import { nativeSamplerConfig } from "./native-sampler-config.ts";
import type { TriggerWatch } from "./trigger-watch.ts";

export interface SequenceSlot {
  readonly id: SequenceId;
  sampler: NativeSampler | null;
  sampling: SamplingParams | null;
  /** Sampled tokens, for presence and frequency penalties. */
  history: TokenId[];
  /** Where the output is in the request's grammar; the native sampler advances it. */
  grammarState: NativeGrammarState | null;
  /** A lazy grammar's watch for its trigger, until the trigger appears. */
  triggerWatch: TriggerWatch | null;
  state: "free" | "active";
}

export interface LlamaSequencesOptions {
  readonly numSequences: number;
  /** Most tokens of one sequence: every token it sampled counts for its penalties. */
  readonly contextSize: number;
  readonly isKvShared: boolean;
  /** Slabs with the patched addon: prefixes are copied between slabs (see `ModelInfo.canCopyCells`). */
  readonly canCopyCells: boolean;
  readonly grammars: GrammarFollower;
  /** Told when llama.cpp refuses to drop cells (it may, for recurrent models), which no caller would see else. */
  readonly onNativeLog?: NativeLogSink;
}

/** Saved cells as this engine keeps them: llama.cpp's sequence state, null until the running step is over. */
class HostCells implements SavedCells {
  readonly numTokens: number;
  bytes: Uint8Array | null = null;
  /** Why a copy deferred to the end of a step was not taken; the step reported it, a restore reports it again. */
  failure: unknown = null;

  constructor(numTokens: number) {
    this.numTokens = numTokens;
  }

  get numBytes(): number {
    return this.bytes?.byteLength ?? 0;
  }
}

export class LlamaSequences {
  private readonly native: NativeContext;
  private readonly internals: LlamaInternals;
  private readonly options: LlamaSequencesOptions;
  private readonly slots: SequenceSlot[];
  private isStepping = false;
  private readonly deferred: (() => void)[] = [];

  constructor(native: NativeContext, internals: LlamaInternals, options: LlamaSequencesOptions) {
    this.native = native;
    this.internals = internals;
    this.options = options;
    this.slots = Array.from({ length: options.numSequences }, (_, index) => ({
      id: index as SequenceId,
      sampler: null,
      sampling: null,
      history: [],
      grammarState: null,
      triggerWatch: null,
      state: "free",
    }));
  }

  acquire(sampling: SamplingParams, history: readonly TokenId[]): SequenceId | null {
    this.flushDeferred();
    const slot = this.slots.find((candidate) => candidate.state === "free");
    if (slot === undefined) return null;
    slot.sampling = sampling;
    slot.history = [...history];
    slot.state = "active";
    this.options.grammars.start(slot, history);
    const sampler = this.internals.createSampler();
    sampler.applyConfig(nativeSamplerConfig(sampling, history, this.options.contextSize, slot.grammarState));
    slot.sampler = sampler;
    return slot.id;
  }

  numFree(): number {
    return this.slots.filter((slot) => slot.state === "free").length;
  }

  /** The slot of an acquired sequence; throws for any other id. */
  inUse(sequenceId: SequenceId): SequenceSlot {
    const slot = this.slots[sequenceId];
    if (slot === undefined || slot.state !== "active") throw new Error(`sequence ${sequenceId} is not acquired`);
    return slot;
  }

  release(sequenceId: SequenceId): void {
    const slot = this.slots[sequenceId];
    if (slot === undefined || slot.state !== "active") return;
    this.whenIdle(() => {
      if (slot.state !== "active") return;
      this.removeCells(sequenceId, 0);
      resetSlot(slot);
    });
  }

  truncate(sequenceId: SequenceId, fromPos: number): void {
    const slot = this.slots[sequenceId];
    if (slot === undefined || slot.state === "free") return;
    this.whenIdle(() => {
      if (slot.state === "free") return;
      this.removeCells(sequenceId, Math.max(0, fromPos));
    });
  }

  shareCells(src: SequenceId, dst: SequenceId, startPos: number, endPos: number): void {
    const native = this.idlePatchedContext("sharing KV cells", [src, dst]);
    if (this.options.isKvShared) {
      native.copySequenceCells(src, dst, startPos, endPos);
      return;
    }
    // Between slabs llama.cpp's own copy (seq_cp across streams) takes whole streams, aborts the process on a part
    // of one, and lands only at the next decode, so a save before it would read stale cells. The state API copies
    // just the sequence's cells, at once.
    if (startPos !== 0 || native.getSequenceKvCacheMaxPosition(dst) >= 0)
      throw new Error(`a copy between slabs starts at position 0 of an empty sequence, not ${startPos} of ${dst}`);
    if (!native.restoreSequenceCells(dst, native.saveSequenceCells(src)))
      throw new Error(`sequence ${dst}'s slab had no room for sequence ${src}'s cells`);
    this.removeCells(dst, endPos);
  }

  saveCells(sequenceId: SequenceId, numTokens: number): SavedCells {
    const native = this.patchedContext("saving KV cells", [sequenceId]);
    const saved = new HostCells(numTokens);
    // A request failed from outside the loop (at shutdown) ends during a step; its copy is taken once the step is over.
    this.whenIdle(() => {
      try {
        this.removeCells(sequenceId, numTokens);
        saved.bytes = native.saveSequenceCells(sequenceId);
      } catch (error) {
        saved.failure = error;
        throw error;
      }
    });
    return saved;
  }

  restoreCells(saved: SavedCells, dst: SequenceId, startPos: number, endPos: number): boolean {
    const native = this.idlePatchedContext("restoring KV cells", [dst]);
    if (!(saved instanceof HostCells)) throw new TypeError("these cells were not saved by this engine");
    if (saved.bytes === null) throw new Error("saving these cells failed", { cause: saved.failure });
    if (endPos > saved.numTokens || startPos < 0 || startPos >= endPos)
      throw new RangeError(`${saved.numTokens} saved cells cannot restore positions ${startPos}..${endPos}`);
    // llama.cpp restores a sequence whole (dropping what it held first), so the cut follows the restore.
    if (!native.restoreSequenceCells(dst, saved.bytes)) return false;
    if (endPos < saved.numTokens) this.removeCells(dst, endPos);
    if (startPos > 0) this.removeCells(dst, 0, startPos);
    return true;
  }

  /** The range of positions a sequence holds in the KV cache, or null when it holds none. */
  positionsOf(sequenceId: SequenceId): { readonly min: number; readonly max: number } | null {
    const max = this.native.getSequenceKvCacheMaxPosition(sequenceId);
    if (max < 0) return null;
    return { min: this.native.getSequenceKvCacheMinPosition(sequenceId), max };
  }

  /**
   * Runs a step; the KV changes asked for meanwhile happen once it is over, failed or not. A failed change fails
   * the step too, since a sequence may then hold cells the scheduler thinks are gone.
   */
  async duringStep<T>(run: () => Promise<T>): Promise<T> {
    this.isStepping = true;
    const failures: unknown[] = [];
    let result: T | undefined;
    try {
      result = await run();
    } catch (error) {
      failures.push(error);
    }
    this.isStepping = false;
    failures.push(...this.runDeferred());
    if (failures.length > 0) throw combinedFailure(failures);
    return result as T;
  }

  /** Frees every slot and its sampler, for disposal; the cells go with the context. */
  freeAll(): void {
    for (const slot of this.slots) resetSlot(slot);
  }

  /** The patched context, for a KV operation on acquired sequences of the shared pool or of copying slabs. */
  private patchedContext(what: string, sequenceIds: readonly SequenceId[]): PatchedNativeContext {
    const native = this.native;
    const isAllowed = this.options.isKvShared || this.options.canCopyCells;
    if (!isAllowed || !isPatchedContext(native)) throw new Error(`${what} needs the patched addon`);
    for (const id of sequenceIds) this.inUse(id);
    return native;
  }

  /** The same, for an operation that must happen between steps, after the KV changes a step deferred. */
  private idlePatchedContext(what: string, sequenceIds: readonly SequenceId[]): PatchedNativeContext {
    const native = this.patchedContext(what, sequenceIds);
    if (this.isStepping) throw new Error(`${what} cannot happen during a step`);
    this.flushDeferred();
    return native;
  }

  private whenIdle(operation: () => void): void {
    if (this.isStepping) this.deferred.push(operation);
    else operation();
  }

  private flushDeferred(): void {
    if (this.isStepping) return;
    const failures = this.runDeferred();
    if (failures.length > 0) throw combinedFailure(failures);
  }

  /** Runs every deferred change, even after one fails (a release left undone would hold its slot for good). */
  private runDeferred(): unknown[] {
    const failures: unknown[] = [];
    for (const operation of this.deferred.splice(0)) {
      try {
        operation();
      } catch (error) {
        failures.push(error);
      }
    }
    return failures;
  }

  /** Drops the sequence's cells of positions [fromPos, toPos); -1 is the end. */
  private removeCells(sequenceId: SequenceId, fromPos: number, toPos = -1): void {
    if (!this.native.removeTokenCellsFromSequence(sequenceId, fromPos, toPos))
      this.options.onNativeLog?.(
        "error",
        `llama.cpp could not drop the cells of sequence ${sequenceId} from ${fromPos} ${toPos < 0 ? "on" : `to ${toPos}`}`,
      );
  }
}

function resetSlot(slot: SequenceSlot): void {
  slot.sampler?.dispose();
  slot.sampler = null;
  slot.sampling = null;
  slot.history = [];
  slot.grammarState = null;
  slot.triggerWatch = null;
  slot.state = "free";
}
