/**
 * A replay of ggml's graph allocator (`ggml_gallocr`, ggml-alloc.c) over a sketch of a compute graph that
 * records only sizes and data dependencies. llama.cpp sizes its compute buffer by running exactly this
 * allocator over a worst-case graph, so replaying it (same node order, same in-place reuse rules, same
 * best-fit free list) reproduces the buffer size byte for byte instead of guessing at a formula.
 */

/** ggml's CPU buffer alignment (`TENSOR_ALIGNMENT`). */
const ALIGNMENT = 32;

type TensorKind = "input" | "external" | "op" | "view";

/** One tensor of a sketched graph. Only the sketch creates these. */
export interface SketchTensor {
  readonly kind: TensorKind;
  readonly bytes: number;
  readonly sources: readonly SketchTensor[];
  /** For views: the tensor that owns the memory (ggml's `view_src`, always the root of a view chain). */
  readonly viewOf: SketchTensor | null;
  /** Ops that ggml may compute in place (`ggml_op_can_inplace`) reuse a dying parent of the same size. */
  readonly canInplace: boolean;
}

interface TensorState {
  numChildren: number;
  numViews: number;
  isAllocated: boolean;
  offset: number;
}

function alignUp(bytes: number): number {
  return Math.ceil(bytes / ALIGNMENT) * ALIGNMENT;
}

/** `ggml_dyn_tallocr` for one chunk: a sorted free list, best fit except for the open-ended last block. */
class DynamicAllocator {
  private readonly blocks: { offset: number; size: number }[] = [{ offset: 0, size: Number.MAX_SAFE_INTEGER }];
  maxSize = 0;

  allocate(bytes: number): number {
    const size = alignUp(bytes);
    let best = -1;
    let bestSize = Infinity;
    for (let i = 0; i < this.blocks.length - 1; i++) {
      const block = this.blocks[i]!;
      if (block.size >= size && block.size <= bestSize) {
        best = i;
        bestSize = block.size;
      }
    }
    if (best === -1) best = this.blocks.length - 1;
    const block = this.blocks[best]!;
    const offset = block.offset;
    block.offset += size;
    block.size -= size;
    if (block.size === 0) this.blocks.splice(best, 1);
    this.maxSize = Math.max(this.maxSize, offset + size);
    return offset;
  }

  free(offset: number, bytes: number): void {
    const size = alignUp(bytes);
    for (let i = 0; i < this.blocks.length; i++) {
      const block = this.blocks[i]!;
      if (block.offset + block.size === offset) {
        block.size += size;
        const next = this.blocks[i + 1];
        if (next !== undefined && block.offset + block.size === next.offset) {
          block.size += next.size;
          this.blocks.splice(i + 1, 1);
        }
        return;
      }
      if (offset + size === block.offset) {
        block.offset = offset;
        block.size += size;
        const previous = this.blocks[i - 1];
        if (previous !== undefined && previous.offset + previous.size === block.offset) {
          previous.size += block.size;
          this.blocks.splice(i, 1);
        }
        return;
      }
    }
    let position = 0;
    while (position < this.blocks.length && this.blocks[position]!.offset < offset) position++;
    this.blocks.splice(position, 0, { offset, size });
  }
}

/**
 * Builds a graph the way ggml does (`ggml_build_forward_expand`: depth-first, sources in order, leaves and
 * nodes listed on first visit) and measures the compute buffer `ggml_gallocr` would reserve for it.
 */
export class GraphSketch {
  private readonly nodes: SketchTensor[] = [];
  private readonly leaves: SketchTensor[] = [];
  private readonly visited = new Set<SketchTensor>();
  private readonly outputs = new Set<SketchTensor>();

  /** A graph input the compute buffer holds (token ids, positions, masks, KV slot indices). */
  input(bytes: number): SketchTensor {
    return { kind: "input", bytes, sources: [], viewOf: null, canInplace: false };
  }

  /** A tensor in some other buffer: weights, the KV cache. */
  external(): SketchTensor {
    return { kind: "external", bytes: 0, sources: [], viewOf: null, canInplace: false };
  }

  op(bytes: number, sources: readonly SketchTensor[], canInplace = false): SketchTensor {
    return { kind: "op", bytes, sources, viewOf: null, canInplace };
  }

  /** A view, reshape, permute or transpose of `source`: no memory of its own. */
  view(source: SketchTensor): SketchTensor {
    return { kind: "view", bytes: 0, sources: [source], viewOf: source.viewOf ?? source, canInplace: false };
  }

  /** An op that writes into `target` and returns a view of it (set_rows into the KV cache). */
  writeInto(target: SketchTensor, sources: readonly SketchTensor[]): SketchTensor {
    return {
      kind: "view",
      bytes: 0,
      sources: [...sources, target],
      viewOf: target.viewOf ?? target,
      canInplace: false,
    };
  }

  /** Graph outputs (logits, final embeddings) are never freed or reused. */
  markOutput(tensor: SketchTensor): void {
    this.outputs.add(tensor);
  }

  expand(tensor: SketchTensor): void {
    if (this.visited.has(tensor)) return;
    this.visited.add(tensor);
    for (const source of tensor.sources) this.expand(source);
    if (tensor.kind === "input" || tensor.kind === "external") this.leaves.push(tensor);
    else this.nodes.push(tensor);
  }

  /** Bytes of the compute buffer: the high-water mark of the allocator over the whole graph. */
  measure(): number {
    const allocator = new DynamicAllocator();
    const states = new Map<SketchTensor, TensorState>();
    const state = (tensor: SketchTensor): TensorState => {
      let found = states.get(tensor);
      if (found === undefined) {
        found = { numChildren: 0, numViews: 0, isAllocated: false, offset: -1 };
        states.set(tensor, found);
      }
      return found;
    };
    const release = (tensor: SketchTensor): void => {
      if (this.outputs.has(tensor)) return;
      const own = state(tensor);
      allocator.free(own.offset, tensor.bytes);
      own.isAllocated = false;
    };
    const allocate = (tensor: SketchTensor): void => {
      const own = state(tensor);
      if (tensor.kind === "external" || tensor.kind === "view" || own.isAllocated) return;
      own.isAllocated = true;
      if (tensor.canInplace) {
        for (const parent of tensor.sources) {
          const parentState = state(parent);
          // Views are never "own" allocations in ggml, so an op on a view never runs in place.
          if (!parentState.isAllocated || this.outputs.has(parent) || parent.bytes !== tensor.bytes) continue;
          if (parentState.numChildren === 1 && parentState.numViews === 0) {
            own.offset = parentState.offset;
            parentState.isAllocated = false;
            return;
          }
        }
      }
      own.offset = allocator.allocate(tensor.bytes);
    };

    // Same three passes as `ggml_gallocr_alloc_graph_impl`: leaves, then counting, then allocation.
    for (const leaf of this.leaves) allocate(leaf);
    for (const node of this.nodes) {
      if (node.viewOf !== null) state(node.viewOf).numViews++;
      for (const source of node.sources) state(source).numChildren++;
    }
    for (const node of this.nodes) {
      for (const source of node.sources) allocate(source);
      allocate(node);
      for (const parent of node.sources) {
        const parentState = state(parent);
        parentState.numChildren--;
        if (parentState.numChildren !== 0 || parentState.numViews !== 0) continue;
        if (parent.viewOf !== null) {
          const rootState = state(parent.viewOf);
          rootState.numViews--;
          if (rootState.numViews === 0 && rootState.numChildren === 0 && rootState.isAllocated) release(parent.viewOf);
        } else if (parentState.isAllocated) {
          release(parent);
        }
      }
    }
    return allocator.maxSize;
  }
}
