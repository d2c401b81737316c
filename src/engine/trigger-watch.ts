/**
 * Watches a free-running output for the first trigger of a lazy grammar (`tool_choice: "auto"`): text is free until
 * a trigger appears, and from then on a grammar constrains what follows it. Pure: fed text, it says which trigger
 * appeared first and the text that came after it in the same piece, which the grammar must then accept.
 */
import type { GrammarTrigger } from "./engine.ts";

export interface TriggerHit {
  readonly trigger: GrammarTrigger;
  /** Output text after the trigger that was already generated when it appeared. */
  readonly rest: string;
}

export class TriggerWatch {
  private readonly triggers: readonly GrammarTrigger[];
  /** The longest trigger's length: text older than this before the end cannot start a trigger still to appear. */
  private readonly longest: number;
  private text = "";
  /** Triggers allowed only at the start (after blanks) are dropped once the output has passed that point. */
  private atStartOpen: boolean;

  constructor(triggers: readonly GrammarTrigger[]) {
    if (triggers.some((trigger) => trigger.text.length === 0)) throw new RangeError("a trigger cannot be empty");
    this.triggers = triggers;
    this.longest = Math.max(...triggers.map((trigger) => trigger.text.length));
    this.atStartOpen = triggers.some((trigger) => trigger.isAtStartOnly);
  }

  /** Reads the next piece of output; returns the hit once a trigger is complete, else null. */
  push(piece: string): TriggerHit | null {
    const searchFrom = Math.max(0, this.text.length - this.longest + 1);
    this.text += piece;
    let best: { trigger: GrammarTrigger; at: number } | null = null;
    const startOffset = this.text.length - this.text.trimStart().length;
    for (const trigger of this.triggers) {
      let at: number;
      if (trigger.isAtStartOnly) {
        if (!this.atStartOpen) continue;
        at = this.text.startsWith(trigger.text, startOffset) ? startOffset : -1;
      } else {
        at = this.text.indexOf(trigger.text, searchFrom);
      }
      if (at >= 0 && (best === null || at < best.at)) best = { trigger, at };
    }
    if (best !== null) return { trigger: best.trigger, rest: this.text.slice(best.at + best.trigger.text.length) };
    if (this.atStartOpen) this.atStartOpen = this.couldStillStart(startOffset);
    if (!this.atStartOpen) this.text = this.text.slice(-this.longest);
    return null;
  }

  /** Whether the non-blank output so far is still a prefix of some start-only trigger. */
  private couldStillStart(startOffset: number): boolean {
    const head = this.text.slice(startOffset);
    return this.triggers.some((trigger) => trigger.isAtStartOnly && trigger.text.startsWith(head));
  }
}
