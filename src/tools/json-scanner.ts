/**
 * An incremental JSON syntax checker in the manner of Crockford's JSON_checker: fed one UTF-16 code unit at a
 * time, it keeps only a stack of open containers, so a delta may end anywhere (mid-string, mid-escape,
 * mid-number) and nothing is ever re-read. After each unit it says what that unit did, which is all the tool-call
 * parser needs to follow a call's keys and copy its arguments out as they arrive.
 */

type ContainerKind = "object" | "array";

type Mode =
  | "value"
  | "valueOrEnd"
  | "keyOrEnd"
  | "key"
  | "colon"
  | "afterValue"
  | "string"
  | "escape"
  | "unicode"
  | "number"
  | "literal"
  | "done";

/** Where a number is: the states that may end it are `zero`, `int`, `frac` and `expDigits`. */
type NumberState = "minus" | "zero" | "int" | "dot" | "frac" | "exp" | "expSign" | "expDigits";

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

export class JsonScanner {
  /** The last unit began a value inside the container that was innermost before it (depth 0: the root). */
  startedValue = false;
  /** The last unit closed an object key; the key, decoded. */
  completedKey: string | null = null;
  /** The last unit closed a string value; the string, decoded. */
  completedString: string | null = null;
  /** False for whitespace between tokens: the only units a compact copy leaves out. */
  isSignificant = false;
  /** Why the last unit was refused; null while the text is a valid prefix. */
  error: string | null = null;

  private readonly stack: ContainerKind[] = [];
  private mode: Mode = "value";
  private isKey = false;
  private text = "";
  private numHexDigits = 0;
  private hexValue = 0;
  private numberState: NumberState = "int";
  private literalRest = "";

  /** Containers open after the last unit. */
  get depth(): number {
    return this.stack.length;
  }

  /** Whether a whole value has been read; anything more is an error. */
  get isDone(): boolean {
    return this.mode === "done";
  }

  /** Feeds one UTF-16 code unit; false (with `error` set) if the text so far cannot begin a JSON value. */
  feed(unit: string): boolean {
    this.startedValue = false;
    this.completedKey = null;
    this.completedString = null;
    this.isSignificant = true;
    if (this.error !== null) return false;
    for (;;) {
      const result = this.step(unit);
      if (result === "again") continue;
      if (result !== null) this.error = result;
      return result === null;
    }
  }

  /** One transition: null if accepted, "again" to re-read the unit in the new mode, otherwise an error. */
  private step(unit: string): string | null | "again" {
    const mode = this.mode;
    if (mode === "string") return this.stringUnit(unit);
    if (mode === "escape") return this.escapeUnit(unit);
    if (mode === "unicode") return this.unicodeUnit(unit);
    if (mode === "number") return this.numberUnit(unit);
    if (mode === "literal") {
      if (unit !== this.literalRest[0]) return `unexpected ${describe(unit)} in a literal`;
      this.literalRest = this.literalRest.slice(1);
      if (this.literalRest === "") this.endValue();
      return null;
    }
    if (unit === " " || unit === "\n" || unit === "\r" || unit === "\t") {
      this.isSignificant = false;
      return null;
    }
    switch (mode) {
      case "value":
        return this.startValue(unit);
      case "valueOrEnd":
        return unit === "]" ? this.close() : this.startValue(unit);
      case "keyOrEnd":
        if (unit === "}") return this.close();
        return this.startKey(unit);
      case "key":
        return this.startKey(unit);
      case "colon":
        if (unit !== ":") return `expected ":" after an object key, found ${describe(unit)}`;
        this.mode = "value";
        return null;
      case "afterValue": {
        const top = this.stack[this.stack.length - 1];
        if (unit === ",") {
          this.mode = top === "object" ? "key" : "value";
          return null;
        }
        if ((unit === "}" && top === "object") || (unit === "]" && top === "array")) return this.close();
        return `expected "," or "${top === "object" ? "}" : "]"}", found ${describe(unit)}`;
      }
      default:
        return "text after the end of the JSON value";
    }
  }

  private startKey(unit: string): string | null {
    if (unit !== '"') return `expected an object key, found ${describe(unit)}`;
    this.beginString(true);
    return null;
  }

  private startValue(unit: string): string | null {
    this.startedValue = true;
    if (unit === "{" || unit === "[") {
      this.stack.push(unit === "{" ? "object" : "array");
      this.mode = unit === "{" ? "keyOrEnd" : "valueOrEnd";
    } else if (unit === '"') {
      this.beginString(false);
    } else if (unit === "-" || (unit >= "0" && unit <= "9")) {
      this.mode = "number";
      this.numberState = unit === "-" ? "minus" : unit === "0" ? "zero" : "int";
    } else if (unit === "t" || unit === "f" || unit === "n") {
      this.mode = "literal";
      this.literalRest = unit === "t" ? "rue" : unit === "f" ? "alse" : "ull";
    } else {
      this.startedValue = false;
      return `expected a value, found ${describe(unit)}`;
    }
    return null;
  }

  private beginString(isKey: boolean): void {
    this.mode = "string";
    this.isKey = isKey;
    this.text = "";
  }

  private stringUnit(unit: string): string | null {
    if (unit === '"') {
      if (this.isKey) {
        this.completedKey = this.text;
        this.mode = "colon";
      } else {
        this.completedString = this.text;
        this.endValue();
      }
      this.text = "";
    } else if (unit === "\\") {
      this.mode = "escape";
    } else if (unit.charCodeAt(0) < 0x20) {
      return `unescaped control character ${describe(unit)} in a string`;
    } else {
      this.text += unit;
    }
    return null;
  }

  private escapeUnit(unit: string): string | null {
    if (unit === "u") {
      this.mode = "unicode";
      this.numHexDigits = 0;
      this.hexValue = 0;
      return null;
    }
    const escaped = ESCAPES[unit];
    if (escaped === undefined) return `invalid escape \\${unit} in a string`;
    this.text += escaped;
    this.mode = "string";
    return null;
  }

  private unicodeUnit(unit: string): string | null {
    const digit = Number.parseInt(unit, 16);
    if (!/^[0-9a-fA-F]$/.test(unit)) return `invalid \\u escape digit ${describe(unit)}`;
    this.hexValue = this.hexValue * 16 + digit;
    if (++this.numHexDigits === 4) {
      this.text += String.fromCharCode(this.hexValue);
      this.mode = "string";
    }
    return null;
  }

  private numberUnit(unit: string): string | null | "again" {
    const isDigit = unit >= "0" && unit <= "9";
    const state = this.numberState;
    if (isDigit) {
      if (state === "zero") return "a number has a leading zero";
      this.numberState = state === "minus" && unit === "0" ? "zero" : NEXT_ON_DIGIT[state];
      return null;
    }
    if (unit === "." && (state === "zero" || state === "int")) {
      this.numberState = "dot";
      return null;
    }
    if ((unit === "e" || unit === "E") && (state === "zero" || state === "int" || state === "frac")) {
      this.numberState = "exp";
      return null;
    }
    if ((unit === "+" || unit === "-") && state === "exp") {
      this.numberState = "expSign";
      return null;
    }
    if (state === "zero" || state === "int" || state === "frac" || state === "expDigits") {
      this.endValue();
      return "again";
    }
    return `unexpected ${describe(unit)} in a number`;
  }

  private close(): null {
    this.stack.pop();
    this.endValue();
    return null;
  }

  private endValue(): void {
    this.mode = this.stack.length === 0 ? "done" : "afterValue";
  }
}

const NEXT_ON_DIGIT: Readonly<Record<NumberState, NumberState>> = {
  minus: "int",
  zero: "int",
  int: "int",
  dot: "frac",
  frac: "frac",
  exp: "expDigits",
  expSign: "expDigits",
  expDigits: "expDigits",
};

function describe(unit: string): string {
  const code = unit.charCodeAt(0);
  return code >= 0x20 && code < 0x7f ? JSON.stringify(unit) : `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}
