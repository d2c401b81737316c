/**
 * Random strings of a grammar's language, for fuzzing whatever produced the grammar. A random derivation, left to
 * right on an explicit stack (no recursion), that leans towards the shallowest alternatives and the fewest
 * repetitions as it nears its depth or length bound, and gives up with `null` past them.
 */

import { type CharElement, charSetRanges, clipRanges } from "./char-set.ts";
import type { GbnfCharRange, GbnfElement, GbnfGrammar, GbnfSequence } from "./gbnf-ast.ts";

export const DEFAULT_SAMPLE_MAX_LENGTH = 4096;
export const DEFAULT_SAMPLE_MAX_DEPTH = 64;

export interface SampleGbnfOptions {
  /** Longest output, in UTF-16 code units; longer derivations return null. Defaults to 4096. */
  readonly maxLength?: number;
  /** Most rule references nested in one derivation; deeper ones return null. Defaults to 64. */
  readonly maxDepth?: number;
}

/** Characters a class admits are drawn from printable ASCII this often when it has any, to keep output readable. */
const PRINTABLE_BIAS = 0.9;

interface WorkItem {
  readonly element: GbnfElement;
  /** Rule references expanded above this element. */
  readonly depth: number;
}

/** `random` returns numbers in [0, 1), like Math.random. */
export function sampleGbnf(grammar: GbnfGrammar, random: () => number, options: SampleGbnfOptions = {}): string | null {
  const maxLength = options.maxLength ?? DEFAULT_SAMPLE_MAX_LENGTH;
  const maxDepth = options.maxDepth ?? DEFAULT_SAMPLE_MAX_DEPTH;
  const heights = new Heights(grammar);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const root = grammar.rules.get(grammar.rootName);
  if (root === undefined) return null;

  const output: string[] = [];
  let length = 0;
  const stack: WorkItem[] = [{ element: { kind: "rule-ref", name: grammar.rootName }, depth: 0 }];
  const pushSequence = (sequence: GbnfSequence, depth: number) => {
    for (let index = sequence.length - 1; index >= 0; index--) stack.push({ element: sequence[index]!, depth });
  };
  const pressure = (depth: number) => Math.min(1, Math.max(depth / maxDepth, length / maxLength));
  /** An alternative that can finish within the depth left, shallowest ones more often under pressure. */
  const chooseAlternative = (alternatives: readonly GbnfSequence[], depth: number): GbnfSequence | null => {
    const viable = alternatives.filter((sequence) => depth + heights.ofSequence(sequence) <= maxDepth);
    if (viable.length === 0) return null;
    if (random() >= pressure(depth)) return pick(viable);
    const lowest = Math.min(...viable.map((sequence) => heights.ofSequence(sequence)));
    return pick(viable.filter((sequence) => heights.ofSequence(sequence) === lowest));
  };

  const maxSteps = 64 * maxLength + 10_000;
  for (let step = 0; stack.length > 0; step++) {
    if (step > maxSteps || length > maxLength) return null;
    const { element, depth } = stack.pop()!;
    switch (element.kind) {
      case "literal":
        output.push(element.value);
        length += element.value.length;
        break;
      case "char-class":
      case "any-char": {
        const char = pickChar(heights.rangesOf(element), random);
        if (char === null) return null;
        output.push(char);
        length += char.length;
        break;
      }
      case "rule-ref": {
        const chosen = chooseAlternative(grammar.rules.get(element.name) ?? [], depth + 1);
        if (chosen === null) return null;
        pushSequence(chosen, depth + 1);
        break;
      }
      case "group": {
        const chosen = chooseAlternative(element.alternatives, depth);
        if (chosen === null) return null;
        pushSequence(chosen, depth);
        break;
      }
      case "repetition": {
        const { min, max } = element;
        const canRepeat = depth + heights.ofElement(element.element) <= maxDepth;
        if (!canRepeat && min > 0) return null;
        let count = min;
        if (canRepeat && random() >= pressure(depth)) {
          const spread = max === null ? Number.POSITIVE_INFINITY : max - min;
          if (max !== null && random() < 0.25) count += Math.floor(random() * (spread + 1));
          else while (count - min < spread && random() < 0.5) count++;
        }
        for (let copy = 0; copy < count; copy++) stack.push({ element: element.element, depth });
        break;
      }
    }
  }
  return length > maxLength ? null : output.join("");
}

function pickChar(ranges: readonly GbnfCharRange[], random: () => number): string | null {
  const printable = clipRanges(ranges, 0x20, 0x7e);
  const from = printable.length > 0 && random() < PRINTABLE_BIAS ? printable : ranges;
  if (from.length === 0) return null;
  const range = from[Math.floor(random() * from.length)]!;
  return String.fromCodePoint(range.start + Math.floor(random() * (range.end - range.start + 1)));
}

/**
 * The fewest nested rule references a rule or element needs to finish (Infinity if it never can), found by
 * rounds of relaxation; fine for the grammars tests sample from.
 */
class Heights {
  private readonly rules = new Map<string, number>();
  private readonly charRanges = new WeakMap<CharElement, GbnfCharRange[]>();

  constructor(grammar: GbnfGrammar) {
    for (const name of grammar.rules.keys()) this.rules.set(name, Number.POSITIVE_INFINITY);
    for (let isChanged = true; isChanged; ) {
      isChanged = false;
      for (const [name, alternatives] of grammar.rules) {
        const height = 1 + Math.min(...alternatives.map((sequence) => this.ofSequence(sequence)));
        if (height < this.rules.get(name)!) {
          this.rules.set(name, height);
          isChanged = true;
        }
      }
    }
  }

  ofSequence(sequence: GbnfSequence): number {
    let height = 0;
    for (const element of sequence) height = Math.max(height, this.ofElement(element));
    return height;
  }

  ofElement(element: GbnfElement): number {
    switch (element.kind) {
      case "literal":
        return 0;
      case "char-class":
      case "any-char":
        return this.rangesOf(element).length > 0 ? 0 : Number.POSITIVE_INFINITY;
      case "rule-ref":
        return this.rules.get(element.name) ?? Number.POSITIVE_INFINITY;
      case "group":
        return Math.min(...element.alternatives.map((sequence) => this.ofSequence(sequence)));
      case "repetition":
        return element.min === 0 ? 0 : this.ofElement(element.element);
    }
  }

  rangesOf(element: CharElement): GbnfCharRange[] {
    let ranges = this.charRanges.get(element);
    if (ranges === undefined) {
      ranges = charSetRanges(element);
      this.charRanges.set(element, ranges);
    }
    return ranges;
  }
}
