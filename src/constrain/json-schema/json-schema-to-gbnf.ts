/**
 * JSON Schema → GBNF for llama.cpp's grammar engine, with one principle: never a looser grammar. Every
 * constraining keyword is either enforced exactly or refused with a `SchemaError` naming it and where it is; the
 * grammar may be stricter than the schema (fixed property order, bounded whitespace, bounded digits), and each
 * such choice is documented where it is made. Every string the grammar accepts parses as JSON and validates.
 */
import { GbnfBuilder } from "./gbnf-builder.ts";
import { escapeToken } from "./json-pointer.ts";
import { JsonRules } from "./json-rules.ts";
import { resolveLimits, type SchemaLimits } from "./limits.ts";
import { regexToGbnfWith } from "./regex-to-gbnf.ts";
import { SchemaCompiler } from "./schema-compiler.ts";
import { SchemaError } from "./schema-error.ts";

export interface JsonSchemaToGbnfOptions {
  /** Overrides of `DEFAULT_SCHEMA_LIMITS`. */
  readonly limits?: Partial<SchemaLimits>;
}

/** GBNF with a `root` rule for JSON text that validates against `schema`; throws `SchemaError`. */
export function jsonSchemaToGbnf(schema: unknown, options: JsonSchemaToGbnfOptions = {}): string {
  const limits = resolveLimits(options.limits);
  measureDocument(schema, limits);
  return new SchemaCompiler(schema, new GbnfBuilder(limits), limits).compileRoot();
}

/**
 * Throws the `SchemaError` `jsonSchemaToGbnf` would throw for a document too large or too deep, without converting
 * it: for callers that walk the document recursively first (hashing it, say).
 */
export function checkSchemaDocument(schema: unknown, options: JsonSchemaToGbnfOptions = {}): void {
  measureDocument(schema, resolveLimits(options.limits));
}

/** GBNF with a `root` rule for output matching `pattern` as a whole (vLLM's `structured_outputs.regex`). */
export function regexToGbnf(pattern: string, options: JsonSchemaToGbnfOptions = {}): string {
  const limits = resolveLimits(options.limits);
  return regexToGbnfWith(pattern, new GbnfBuilder(limits), limits);
}

/** Any JSON object, for `response_format: {type: "json_object"}`. */
export const JSON_OBJECT_GBNF: string = (() => {
  const builder = new GbnfBuilder(resolveLimits(undefined));
  builder.defineRoot(new JsonRules(builder).object);
  return builder.format();
})();

/**
 * Counts the document's values and depth without recursion, before anything else walks it: a hostile document
 * (10,000 levels deep, a million properties) is refused before any recursive code could overflow the stack. The
 * values of `enum`, `const`, `default` and `examples` are data: they count for depth (they are serialized
 * recursively too) but not as schema values.
 *
 * Also refuses a `$ref` below a subschema whose `$id` (draft 4: `id`) changes the base URI: there `#/...` means
 * that subschema, not the document, and pagoda resolves refs against the document only.
 */
function measureDocument(schema: unknown, limits: SchemaLimits): void {
  interface Entry {
    readonly value: unknown;
    readonly depth: number;
    readonly parent: Entry | null;
    readonly key: string;
    readonly isRebased: boolean;
    readonly isData: boolean;
  }
  const stack: Entry[] = [{ value: schema, depth: 1, parent: null, key: "", isRebased: false, isData: false }];
  let numNodes = 0;
  while (stack.length > 0) {
    const entry = stack.pop() as Entry;
    const { value, depth, isData } = entry;
    if (!isData && ++numNodes > limits.maxSchemaNodes) {
      throw new SchemaError("schema_too_large", "maxSchemaNodes", "", `more than ${limits.maxSchemaNodes} values`);
    }
    if (depth > limits.maxDocumentDepth) {
      throw new SchemaError(
        "schema_too_large",
        "maxDocumentDepth",
        "",
        `nested deeper than ${limits.maxDocumentDepth}`,
      );
    }
    if (typeof value !== "object" || value === null) continue;
    if (isData) {
      for (const child of Object.values(value))
        stack.push({ value: child, depth: depth + 1, parent: entry, key: "", isRebased: false, isData: true });
      continue;
    }
    const record = value as Record<string, unknown>;
    const rebases = depth > 1 && !Array.isArray(value) && (isRebasing(record.$id) || isRebasing(record.id));
    const isRebased = entry.isRebased || rebases;
    if (isRebased && typeof record.$ref === "string" && record.$ref.startsWith("#")) {
      throw new SchemaError(
        "unresolvable_ref",
        "$ref",
        pointerOf(entry),
        "a $ref below a nested $id is resolved against it",
      );
    }
    for (const [key, child] of Object.entries(value)) {
      const isDataKeyword = key === "enum" || key === "const" || key === "default" || key === "examples";
      stack.push({ value: child, depth: depth + 1, parent: entry, key, isRebased, isData: isDataKeyword });
    }
  }
}

function pointerOf(entry: { readonly parent: unknown; readonly key: string }): string {
  const tokens: string[] = [];
  for (let at = entry as { parent: unknown; key: string } | null; at?.parent; at = at.parent as typeof at) {
    tokens.push(escapeToken(at.key));
  }
  return tokens.length === 0 ? "" : `/${tokens.reverse().join("/")}`;
}

function isRebasing(id: unknown): boolean {
  return typeof id === "string" && !id.startsWith("#");
}
