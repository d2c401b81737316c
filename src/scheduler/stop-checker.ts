/**
 * Pure stop conditions. Kept apart from the scheduler so every rule is testable on plain values.
 */
import type { TokenId } from "../engine/engine.ts";
import type { FinishReason } from "./request.ts";

export interface TokenStopInput {
  readonly token: TokenId;
  readonly isEndOfGeneration: boolean;
  readonly stopTokens: readonly TokenId[];
  readonly ignoreEos: boolean;
}

/** A stop token ends generation and contributes no text. */
export function isStopToken(input: TokenStopInput): boolean {
  if (input.stopTokens.includes(input.token)) return true;
  return input.isEndOfGeneration && !input.ignoreEos;
}

export interface StopStringMatch {
  /** Index in the text where the stop string starts; the output ends there. */
  readonly index: number;
  readonly stop: string;
}

/**
 * Finds the earliest stop string that ends within the text appended last. `searchFrom` is the length of the
 * text before the latest append: a match must end after it, so earlier text is never re-reported.
 */
export function findStopString(
  text: string,
  stopStrings: readonly string[],
  searchFrom: number,
): StopStringMatch | null {
  let best: StopStringMatch | null = null;
  for (const stop of stopStrings) {
    if (stop.length === 0) continue;
    const from = Math.max(0, searchFrom - stop.length + 1);
    const index = text.indexOf(stop, from);
    if (index !== -1 && (best === null || index < best.index)) best = { index, stop };
  }
  return best;
}

/**
 * Length of the longest suffix of `text` that is a proper prefix of a stop string: that much must be held back
 * from a stream, because the next token may complete the stop string.
 */
export function heldBackLength(text: string, stopStrings: readonly string[]): number {
  let held = 0;
  for (const stop of stopStrings) {
    for (let length = Math.min(stop.length - 1, text.length); length > held; length--) {
      if (text.endsWith(stop.slice(0, length))) {
        held = length;
        break;
      }
    }
  }
  return held;
}

export interface LengthStopInput {
  readonly numOutputTokens: number;
  readonly maxTokens: number;
  readonly numTokens: number;
  readonly contextSize: number;
}

/** "length" when max_tokens is reached or the sequence fills its context; the context is never shifted. */
export function lengthStop(input: LengthStopInput): FinishReason | null {
  if (input.numOutputTokens >= input.maxTokens) return "length";
  if (input.numTokens >= input.contextSize) return "length";
  return null;
}

export type StopInput = TokenStopInput & LengthStopInput;

/** The core's stop check after each appended token: a stop token first (it adds no text), then the lengths. */
export function checkStop(input: StopInput): FinishReason | null {
  return isStopToken(input) ? "stop" : lengthStop(input);
}
