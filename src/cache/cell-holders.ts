/**
 * Who holds the KV cells of which blocks: the engine sequences of running requests, in llama.cpp's shared pool,
 * and saved prefixes, in host memory.
 *
 * The block manager decides how many cells are in use; llama.cpp decides which. A cell of the pool lives as long as
 * some sequence holds it. llama.cpp attends over every cell up to the highest occupied one, so a finished request's
 * cached prefix does not stay in the pool: its cells are copied out to host memory (a *saved prefix*) and the
 * sequence lets go of them. A new request whose prompt starts with cached blocks gets their cells from a running
 * sequence that holds them (a zero-copy fork) or, when none does, by restoring a saved prefix (a memory copy, far
 * cheaper than recomputing). Both mix: the leading blocks running sequences hold (a shared system prompt) are
 * forked, the saved prefix gives the blocks after them (a user's own earlier turns), and running sequences the rest.
 * With slabs (`copiesCells`) each sequence holds cells of its own, so a fork is a copy and comes whole from one
 * source: the running sequence or the saved prefix that covers the most leading blocks.
 * When the block pool evicts a cached block, every saved prefix is cut at that block;
 * blocks that lose their last holder lose their cells too, so they are uncached. Block i of a chain always covers
 * positions [i × blockSize, (i + 1) × blockSize).
 */
import type { SavedCells, SequenceId } from "../engine/engine.ts";
import type { BlockId } from "./block.ts";

/** The engine operations this needs. */
export interface CellOps {
  shareCells(src: SequenceId, dst: SequenceId, startPos: number, endPos: number): void;
  truncateSequence(sequenceId: SequenceId, fromPos: number): void;
  releaseSequence(sequenceId: SequenceId): void;
  saveCells(sequenceId: SequenceId, numTokens: number): SavedCells;
  restoreCells(saved: SavedCells, dst: SequenceId, startPos: number, endPos: number): boolean;
}

/** The view of a block this needs; the block manager's blocks fit it. */
export interface HeldBlock {
  readonly id: BlockId;
  readonly hash: string | null;
  readonly refCount: number;
}

export interface CellHoldersOptions<Block extends HeldBlock> {
  readonly blockSize: number;
  /** Cells of the engine's pool. */
  readonly numCells: number;
  /**
   * A slab per sequence: a fork copies cells into the new sequence's slab, from position 0 and from one source
   * (see `SequenceEngine.shareCells`); a restore needs no room in a shared pool.
   */
  readonly copiesCells?: boolean;
  /** Most tokens all saved prefixes together may copy to host memory; the least recently used go first. */
  readonly maxSavedTokens: number;
  /** Told when a cached block lost its last holder, so it can no longer be handed out. */
  readonly uncache: (block: Block) => void;
}

/** A cached prefix copied out of the pool. */
interface SavedPrefix<Block> {
  readonly cells: SavedCells;
  /** Blocks whose cells `cells` still holds validly, from position 0; eviction cuts it. */
  readonly chain: Block[];
}

type Holder<Block> = SequenceId | SavedPrefix<Block>;

/**
 * How `fork` gives a prefix its cells: blocks [restoreStart, restoreEnd) from a saved prefix, every other one of
 * the first `numBlocks` from running sequences.
 */
interface ForkPlan<Block> {
  readonly saved: SavedPrefix<Block> | null;
  /** With `copiesCells`, the one running sequence the blocks are copied from when no saved prefix is restored. */
  readonly source: SequenceId | null;
  readonly restoreStart: number;
  readonly restoreEnd: number;
  readonly numBlocks: number;
}

export class CellHolders<Block extends HeldBlock> {
  private readonly ops: CellOps;
  private readonly options: CellHoldersOptions<Block>;
  /** Blocks whose cells each running sequence holds, by chain position. */
  private readonly chains = new Map<SequenceId, Block[]>();
  private readonly holders = new Map<BlockId, Set<Holder<Block>>>();
  /** Saved prefixes, least recently used first. */
  private readonly saved = new Set<SavedPrefix<Block>>();
  private numSavedTokensTotal = 0;

  constructor(ops: CellOps, options: CellHoldersOptions<Block>) {
    this.ops = ops;
    this.options = options;
  }

  get numSaved(): number {
    return this.saved.size;
  }

  /** Blocks the running sequences hold, each sequence's counted: the cells of slabs, which copy shared blocks. */
  get numSequenceBlocks(): number {
    let total = 0;
    for (const chain of this.chains.values()) total += chain.length;
    return total;
  }

  /** Host memory the saved prefixes take. */
  get numSavedBytes(): number {
    let total = 0;
    for (const prefix of this.saved) total += prefix.cells.numBytes;
    return total;
  }

  /** The request on `sequenceId` will compute these blocks' cells, appended to its chain. */
  onAllocated(sequenceId: SequenceId, blocks: readonly Block[]): void {
    const chain = this.chainOf(sequenceId);
    for (const block of blocks) {
      chain.push(block);
      this.holdersOf(block).add(sequenceId);
    }
  }

  /**
   * How many leading blocks of a cached prefix `fork` can give cells to now. A saved prefix is restored only when
   * the pool surely has room for all its cells; blocks past what any holder covers must be recomputed.
   */
  numForkable(prefix: readonly Block[]): number {
    return this.planFork(prefix).numBlocks;
  }

  /** Gives a fresh sequence the cells of a cached prefix; `prefix` must not be longer than `numForkable` says. */
  fork(sequenceId: SequenceId, prefix: readonly Block[]): void {
    if ((this.chains.get(sequenceId)?.length ?? 0) > 0) throw new Error(`sequence ${sequenceId} already holds cells`);
    const plan = this.planFork(prefix);
    if (plan.numBlocks < prefix.length)
      throw new Error(`only ${plan.numBlocks} of ${prefix.length} prefix blocks have cells to fork`);
    const blockSize = this.options.blockSize;
    // The restore comes first: llama.cpp restores into a sequence that holds nothing.
    if (plan.saved !== null) {
      const [startPos, endPos] = [plan.restoreStart * blockSize, plan.restoreEnd * blockSize];
      if (!this.ops.restoreCells(plan.saved.cells, sequenceId, startPos, endPos)) {
        throw new Error(`the pool had no room to restore ${plan.saved.cells.numTokens} saved cells`);
      }
      this.touch(plan.saved);
    }
    if (plan.source !== null) {
      if (prefix.length > 0) this.ops.shareCells(plan.source, sequenceId, 0, prefix.length * blockSize);
    } else {
      this.shareFromSequences(sequenceId, prefix, 0, plan.restoreStart);
      this.shareFromSequences(sequenceId, prefix, plan.restoreEnd, prefix.length);
    }
    this.onAllocated(sequenceId, prefix);
  }

  /**
   * The request on `sequenceId` ended (finished, aborted or preempted) and its blocks were freed; the sequence lets
   * go of every cell. With `save`, the cells of its leading cached blocks are first copied to host memory, unless
   * other holders keep all of them already.
   */
  release(sequenceId: SequenceId, save: boolean): void {
    const chain = this.chains.get(sequenceId) ?? [];
    let numKept = 0;
    if (save) while (numKept < chain.length && chain[numKept]!.hash !== null) numKept++;
    const kept = chain.slice(0, numKept);
    if (numKept > 0 && kept.some((block) => (this.holders.get(block.id)?.size ?? 0) === 1)) {
      this.addSaved({ cells: this.ops.saveCells(sequenceId, numKept * this.options.blockSize), chain: kept });
    }
    this.ops.releaseSequence(sequenceId);
    this.dropFrom(sequenceId, 0, null);
    this.enforceSavedBudget();
  }

  /** The block pool is reusing `block`: whoever still holds its cells lets go of it and of everything after it. */
  onEvict(block: Block): void {
    for (const holder of [...(this.holders.get(block.id) ?? [])]) {
      const chain = this.chainOfHolder(holder);
      const index = chain.indexOf(block);
      if (index < 0) continue;
      if (typeof holder === "number") this.ops.truncateSequence(holder, index * this.options.blockSize);
      this.dropFrom(holder, index, block);
    }
    this.holders.delete(block.id);
  }

  /** Throws when a cached block has no holder or a chain disagrees with the holder sets. */
  checkInvariants(cachedBlocks: Iterable<HeldBlock>): void {
    const allHolders: Holder<Block>[] = [...this.chains.keys(), ...this.saved];
    for (const holder of allHolders) {
      const chain = this.chainOfHolder(holder);
      if (chain.length === 0 && typeof holder !== "number") throw new Error("a saved prefix holds no block");
      for (const block of chain) {
        if (this.holders.get(block.id)?.has(holder) !== true)
          throw new Error(`${describe(holder)} holds block ${block.id} unrecorded`);
      }
    }
    for (const [blockId, holders] of this.holders) {
      for (const holder of holders) {
        if (!this.chainOfHolder(holder).some((block) => block.id === blockId)) {
          throw new Error(`block ${blockId} lists ${describe(holder)}, whose chain lacks it`);
        }
      }
    }
    for (const block of cachedBlocks) {
      if (block.hash !== null && (this.holders.get(block.id)?.size ?? 0) === 0)
        throw new Error(`cached block ${block.id} has no cells`);
    }
    let numSavedTokens = 0;
    for (const prefix of this.saved) numSavedTokens += prefix.cells.numTokens;
    if (numSavedTokens !== this.numSavedTokensTotal)
      throw new Error(`saved tokens counted ${this.numSavedTokensTotal}, held ${numSavedTokens}`);
    if (numSavedTokens > this.options.maxSavedTokens)
      throw new Error(`saved prefixes hold ${numSavedTokens} tokens, over the limit`);
  }

  /** Gives `sequenceId` the cells of `prefix[start..end)` from the running sequences that hold them. */
  private shareFromSequences(sequenceId: SequenceId, prefix: readonly Block[], start: number, end: number): void {
    const blockSize = this.options.blockSize;
    while (start < end) {
      const source = this.sequenceHolding(prefix[start]!);
      if (source === null) throw new Error(`cached block ${prefix[start]!.id} has no sequence holding its cells`);
      let runEnd = start + 1;
      while (runEnd < end && this.holders.get(prefix[runEnd]!.id)?.has(source) === true) runEnd++;
      this.ops.shareCells(source, sequenceId, start * blockSize, runEnd * blockSize);
      start = runEnd;
    }
  }

  private planFork(prefix: readonly Block[]): ForkPlan<Block> {
    if (this.options.copiesCells === true) return this.planCopy(prefix);
    // Blocks a running sequence holds are forked, never restored: a restored copy of them would live in the pool
    // twice while the blocks count once. A saved prefix gives only the blocks after them; its cells before those
    // are cut again right after the restore, so it still needs room for all of them for a moment.
    const numBySequences = this.numLeadingHeldBySequences(prefix, 0);
    const forkOnly = { saved: null, source: null, restoreStart: 0, restoreEnd: 0, numBlocks: numBySequences };
    let best: SavedPrefix<Block> | null = null;
    let bestCovered = numBySequences;
    // Counting the pool's free cells walks every held block, so it waits for a copy that would be chosen.
    let roomCells: number | null = null;
    for (const prefixSaved of this.saved) {
      const covered = numLeadingShared(prefixSaved.chain, prefix);
      // The most blocks, then the smallest copy.
      const isBetter =
        covered > bestCovered ||
        (best !== null && covered === bestCovered && prefixSaved.cells.numTokens < best.cells.numTokens);
      if (!isBetter) continue;
      roomCells ??= this.numFreeCellsAtLeast();
      if (prefixSaved.cells.numTokens > roomCells) continue;
      best = prefixSaved;
      bestCovered = covered;
    }
    if (best === null) return forkOnly;
    return {
      saved: best,
      source: null,
      restoreStart: numBySequences,
      restoreEnd: bestCovered,
      numBlocks: this.numLeadingHeldBySequences(prefix, bestCovered),
    };
  }

  /**
   * One source for a copy into a slab: the running sequence or the saved prefix holding the longest run of leading
   * blocks (a sequence on a tie: its copy has no cells past what is needed). Each slab has room for its own cells.
   */
  private planCopy(prefix: readonly Block[]): ForkPlan<Block> {
    let source: SequenceId | null = null;
    let numBySource = 0;
    const first = prefix[0];
    for (const holder of first === undefined ? [] : (this.holders.get(first.id) ?? [])) {
      if (typeof holder !== "number") continue;
      const chain = this.chains.get(holder) ?? [];
      const covered = numLeadingShared(chain, prefix);
      if (covered > numBySource) [source, numBySource] = [holder, covered];
    }
    let best: SavedPrefix<Block> | null = null;
    let bestCovered = numBySource;
    for (const prefixSaved of this.saved) {
      const covered = numLeadingShared(prefixSaved.chain, prefix);
      if (covered > bestCovered) [best, bestCovered] = [prefixSaved, covered];
    }
    if (best === null) return { saved: null, source, restoreStart: 0, restoreEnd: 0, numBlocks: numBySource };
    return { saved: best, source: null, restoreStart: 0, restoreEnd: bestCovered, numBlocks: bestCovered };
  }

  /** The end of the run of blocks from `start` on that some running sequence holds. */
  private numLeadingHeldBySequences(prefix: readonly Block[], start: number): number {
    let end = start;
    while (end < prefix.length && this.sequenceHolding(prefix[end]!) !== null) end++;
    return end;
  }

  /** A lower bound of the pool's free cells: every block a running sequence holds counts as full. */
  private numFreeCellsAtLeast(): number {
    let numHeldBlocks = 0;
    for (const holders of this.holders.values()) {
      for (const holder of holders) {
        if (typeof holder === "number") {
          numHeldBlocks++;
          break;
        }
      }
    }
    return this.options.numCells - numHeldBlocks * this.options.blockSize;
  }

  private sequenceHolding(block: Block): SequenceId | null {
    for (const holder of this.holders.get(block.id) ?? []) if (typeof holder === "number") return holder;
    return null;
  }

  private addSaved(prefix: SavedPrefix<Block>): void {
    const older = [...this.saved];
    this.saved.add(prefix);
    this.numSavedTokensTotal += prefix.cells.numTokens;
    for (const block of prefix.chain) this.holdersOf(block).add(prefix);
    // A saved prefix that the new one extends is redundant; the new one holds all its blocks, so none is uncached.
    for (const candidate of older) {
      if (
        candidate.chain.length <= prefix.chain.length &&
        candidate.chain.every((block, index) => prefix.chain[index] === block)
      ) {
        this.dropFrom(candidate, 0, null);
      }
    }
  }

  private enforceSavedBudget(): void {
    while (this.numSavedTokensTotal > this.options.maxSavedTokens) {
      const oldest = this.saved.values().next();
      if (oldest.done === true) return;
      this.dropFrom(oldest.value, 0, null);
    }
  }

  private touch(prefix: SavedPrefix<Block>): void {
    this.saved.delete(prefix);
    this.saved.add(prefix);
  }

  /** Forgets that `holder` holds its chain from `index` on, uncaching blocks left without cells. */
  private dropFrom(holder: Holder<Block>, index: number, evicted: Block | null): void {
    const chain = this.chainOfHolder(holder);
    for (const block of chain.splice(index)) {
      const holders = this.holders.get(block.id);
      holders?.delete(holder);
      if (holders !== undefined && holders.size === 0) {
        this.holders.delete(block.id);
        if (block !== evicted && block.hash !== null && block.refCount === 0) this.options.uncache(block);
      }
    }
    if (chain.length > 0) return;
    if (typeof holder === "number") this.chains.delete(holder);
    else if (this.saved.delete(holder)) this.numSavedTokensTotal -= holder.cells.numTokens;
  }

  private chainOfHolder(holder: Holder<Block>): Block[] {
    return typeof holder === "number" ? (this.chains.get(holder) ?? []) : holder.chain;
  }

  private chainOf(sequenceId: SequenceId): Block[] {
    let chain = this.chains.get(sequenceId);
    if (chain === undefined) {
      chain = [];
      this.chains.set(sequenceId, chain);
    }
    return chain;
  }

  private holdersOf(block: Block): Set<Holder<Block>> {
    let holders = this.holders.get(block.id);
    if (holders === undefined) {
      holders = new Set();
      this.holders.set(block.id, holders);
    }
    return holders;
  }
}

/** How many leading blocks `chain` has in common with `prefix`. */
function numLeadingShared<Block>(chain: readonly Block[], prefix: readonly Block[]): number {
  let count = 0;
  while (count < prefix.length && chain[count] === prefix[count]) count++;
  return count;
}

function describe(holder: Holder<unknown>): string {
  return typeof holder === "number" ? `sequence ${holder}` : `a saved prefix of ${holder.cells.numTokens} tokens`;
}
