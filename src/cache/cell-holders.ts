/**
 * Which engine sequences hold the KV cells of which blocks.
 *
 * The block manager decides how many cells are in use; llama.cpp decides which. In llama.cpp's shared pool a cell
 * lives as long as some sequence holds it, so a cached block stays resident only while a sequence holds its cells:
 * the request that computed it while it runs, and afterwards the same sequence *parked* — released by its request,
 * truncated to its leading cached blocks, and skipped by `acquireSequence`. A new request whose prompt starts with
 * cached blocks forks their cells from any holder (zero copy). When the block pool evicts a cached block, every
 * parked holder is truncated at that block; blocks that lose their last holder lose their cells too, so they are
 * uncached. Block i of a chain always covers positions [i × blockSize, (i + 1) × blockSize).
 */
import type { SequenceId } from "../engine/engine.ts";

/** The engine operations this needs. */
export interface CellOps {
  shareCells(src: SequenceId, dst: SequenceId, startPos: number, endPos: number): void;
  truncateSequence(sequenceId: SequenceId, fromPos: number): void;
  releaseSequence(sequenceId: SequenceId, keepTokens?: number): void;
}

/** The view of a block this needs; the block manager's blocks fit it. */
export interface HeldBlock {
  readonly id: number;
  readonly hash: string | null;
  readonly refCount: number;
}

export class CellHolders<Block extends HeldBlock> {
  private readonly ops: CellOps;
  private readonly blockSize: number;
  private readonly uncache: (block: Block) => void;
  /** Blocks whose cells each sequence holds, by chain position. */
  private readonly chains = new Map<SequenceId, Block[]>();
  private readonly holders = new Map<number, Set<SequenceId>>();
  /** Parked sequences, least recently used first. */
  private readonly parked = new Set<SequenceId>();

  constructor(ops: CellOps, blockSize: number, uncache: (block: Block) => void) {
    this.ops = ops;
    this.blockSize = blockSize;
    this.uncache = uncache;
  }

  get numParked(): number {
    return this.parked.size;
  }

  /** The request on `sequenceId` will compute these blocks' cells, appended to its chain. */
  onAllocated(sequenceId: SequenceId, blocks: readonly Block[]): void {
    const chain = this.chainOf(sequenceId);
    for (const block of blocks) {
      chain.push(block);
      this.holdersOf(block).add(sequenceId);
    }
  }

  /** Gives a fresh sequence the cells of a cached prefix, taken from the sequences that hold them. */
  fork(sequenceId: SequenceId, prefix: readonly Block[]): void {
    if ((this.chains.get(sequenceId)?.length ?? 0) > 0) throw new Error(`sequence ${sequenceId} already holds cells`);
    let start = 0;
    while (start < prefix.length) {
      const source = this.pickSource(prefix[start]!);
      let end = start + 1;
      while (end < prefix.length && this.holders.get(prefix[end]!.id)?.has(source) === true) end++;
      this.ops.shareCells(source, sequenceId, start * this.blockSize, end * this.blockSize);
      if (this.parked.delete(source)) this.parked.add(source);
      start = end;
    }
    this.onAllocated(sequenceId, prefix);
  }

  /**
   * The request on `sequenceId` ended (finished, aborted or preempted) and its blocks were freed. With `park`, the
   * sequence keeps the cells of its leading cached blocks and is parked; otherwise it drops every cell.
   */
  release(sequenceId: SequenceId, park: boolean): void {
    const chain = this.chains.get(sequenceId) ?? [];
    let numKept = 0;
    if (park) while (numKept < chain.length && chain[numKept]!.hash !== null) numKept++;
    // A prefix that other sequences hold already needs no extra parked slot.
    if (chain.slice(0, numKept).every((block) => (this.holders.get(block.id)?.size ?? 0) > 1)) numKept = 0;
    this.ops.releaseSequence(sequenceId, numKept * this.blockSize);
    this.dropFrom(sequenceId, numKept, null);
    if (numKept > 0) this.parked.add(sequenceId);
  }

  /** The block pool is reusing `block`: whoever still holds its cells lets go of it and of everything after it. */
  onEvict(block: Block): void {
    for (const holder of [...(this.holders.get(block.id) ?? [])]) {
      const chain = this.chains.get(holder) ?? [];
      const index = chain.indexOf(block);
      if (index < 0) continue;
      this.ops.truncateSequence(holder, index * this.blockSize);
      this.dropFrom(holder, index, block);
    }
    this.holders.delete(block.id);
  }

  /** Frees the least recently used parked sequence for a new request; false when none is parked. */
  reclaimParked(): boolean {
    const oldest = this.parked.values().next();
    if (oldest.done === true) return false;
    this.ops.truncateSequence(oldest.value, 0);
    this.dropFrom(oldest.value, 0, null);
    return true;
  }

  /** Throws when a cached block has no holder or a chain disagrees with the holder sets. */
  checkInvariants(cachedBlocks: Iterable<HeldBlock>): void {
    for (const [sequenceId, chain] of this.chains) {
      chain.forEach((block) => {
        if (this.holders.get(block.id)?.has(sequenceId) !== true) throw new Error(`sequence ${sequenceId} holds block ${block.id} unrecorded`);
      });
    }
    for (const [blockId, sequenceIds] of this.holders) {
      for (const sequenceId of sequenceIds) {
        if (this.chains.get(sequenceId)?.some((block) => block.id === blockId) !== true) {
          throw new Error(`block ${blockId} lists sequence ${sequenceId}, whose chain lacks it`);
        }
      }
    }
    for (const block of cachedBlocks) {
      if (block.hash !== null && (this.holders.get(block.id)?.size ?? 0) === 0) throw new Error(`cached block ${block.id} has no cells`);
    }
    for (const sequenceId of this.parked) {
      if ((this.chains.get(sequenceId)?.length ?? 0) === 0) throw new Error(`parked sequence ${sequenceId} holds nothing`);
    }
  }

  private pickSource(block: Block): SequenceId {
    const holders = this.holders.get(block.id);
    const first = holders?.values().next();
    if (first === undefined || first.done === true) throw new Error(`cached block ${block.id} has no sequence holding its cells`);
    return first.value;
  }

  /** Forgets that `sequenceId` holds its chain from `index` on, uncaching blocks left without cells. */
  private dropFrom(sequenceId: SequenceId, index: number, evicted: Block | null): void {
    const chain = this.chains.get(sequenceId) ?? [];
    for (const block of chain.splice(index)) {
      const holders = this.holders.get(block.id);
      holders?.delete(sequenceId);
      if (holders !== undefined && holders.size === 0) {
        this.holders.delete(block.id);
        if (block !== evicted && block.hash !== null && block.refCount === 0) this.uncache(block);
      }
    }
    if (chain.length === 0) {
      this.chains.delete(sequenceId);
      this.parked.delete(sequenceId);
    }
  }

  private chainOf(sequenceId: SequenceId): Block[] {
    let chain = this.chains.get(sequenceId);
    if (chain === undefined) {
      chain = [];
      this.chains.set(sequenceId, chain);
    }
    return chain;
  }

  private holdersOf(block: Block): Set<SequenceId> {
    let holders = this.holders.get(block.id);
    if (holders === undefined) {
      holders = new Set();
      this.holders.set(block.id, holders);
    }
    return holders;
  }
}
