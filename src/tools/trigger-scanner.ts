/**
 * Finds call triggers in streamed free text, holding back only text that could still turn out to be (the start
 * of) a trigger, as stop strings are held back: a suffix that is a prefix of a trigger, and the whitespace just
 * before it, which belongs to the trigger (templates put a newline between content and a call; it is not content).
 */
import type { ToolCallTrigger } from "./call-syntax.ts";

/**
 * Whitespace held back before a possible trigger, at most; past this it is content. Bounds the text re-scanned
 * per delta when a model emits a long run of blanks.
 */
export const MAX_HELD_WHITESPACE = 256;

export interface TriggerScan {
  /** Text that is certainly content. */
  readonly content: string;
  /** The trigger found, or null when the whole input was content or is held back. */
  readonly trigger: ToolCallTrigger | null;
  /** The whitespace between the content and the trigger (dropped unless a tentative start is reverted). */
  readonly whitespace: string;
  /** Input after the trigger, for the next parser state. */
  readonly rest: string;
}

export class TriggerScanner {
  private readonly triggers: readonly ToolCallTrigger[];
  private pending = "";

  constructor(triggers: readonly ToolCallTrigger[]) {
    this.triggers = triggers;
  }

  /** `isAtStart`: nothing but whitespace has been output, so at-start-only triggers count. */
  scan(text: string, isAtStart: boolean): TriggerScan {
    const buffer = this.pending + text;
    this.pending = "";
    const leading = leadingWhitespace(buffer);
    const canStart = isAtStart && leading <= MAX_HELD_WHITESPACE;
    let found: { index: number; trigger: ToolCallTrigger } | null = null;
    for (const trigger of this.triggers) {
      let index = -1;
      if (!trigger.isAtStartOnly) index = buffer.indexOf(trigger.text);
      else if (canStart && buffer.startsWith(trigger.text, leading)) index = leading;
      if (index >= 0 && (found === null || index < found.index)) found = { index, trigger };
    }
    if (found !== null) {
      const before = buffer.slice(0, found.index);
      let end = before.length;
      while (end > 0 && isWhitespace(before.charCodeAt(end - 1))) end--;
      const content = before.slice(0, end);
      return {
        content,
        trigger: found.trigger,
        whitespace: before.slice(content.length),
        rest: buffer.slice(found.index + found.trigger.text.length),
      };
    }
    const holdFrom = this.holdFrom(buffer, canStart ? leading : -1);
    this.pending = buffer.slice(holdFrom);
    return { content: buffer.slice(0, holdFrom), trigger: null, whitespace: "", rest: "" };
  }

  /** Gives up whatever is held back: the output has ended. */
  flush(): string {
    const pending = this.pending;
    this.pending = "";
    return pending;
  }

  /** `leading` is the length of the leading whitespace when at-start triggers may still fire, else -1. */
  private holdFrom(buffer: string, leading: number): number {
    if (leading >= 0) {
      const tail = buffer.slice(leading);
      const couldStart = this.triggers.some((trigger) => trigger.isAtStartOnly && trigger.text.startsWith(tail));
      if (couldStart) return 0;
    }
    let holdFrom = buffer.length;
    for (const trigger of this.triggers) {
      if (trigger.isAtStartOnly) continue;
      const longest = Math.min(trigger.text.length - 1, buffer.length);
      for (let length = longest; length > 0; length--) {
        if (length <= buffer.length - holdFrom) break;
        if (trigger.text.startsWith(buffer.slice(buffer.length - length))) {
          holdFrom = buffer.length - length;
          break;
        }
      }
    }
    const limit = Math.max(0, holdFrom - MAX_HELD_WHITESPACE);
    while (holdFrom > limit && isWhitespace(buffer.charCodeAt(holdFrom - 1))) holdFrom--;
    return holdFrom;
  }
}

function leadingWhitespace(text: string): number {
  let index = 0;
  while (index < text.length && isWhitespace(text.charCodeAt(index))) index++;
  return index;
}

function isWhitespace(unit: number): boolean {
  return unit === 0x20 || unit === 0x0a || unit === 0x0d || unit === 0x09;
}
