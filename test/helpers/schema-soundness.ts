/**
 * The soundness check of the JSON Schema converter, shared by its unit tests and bench/schema-coverage.ts: convert
 * a schema, sample strings from the grammar with a seeded generator, and validate each with ajv under the draft the
 * schema declares. A sample that does not parse or validate is a soundness bug.
 */
import { Ajv, type ValidateFunction } from "ajv";
import { Ajv2019 } from "ajv/dist/2019.js";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { parseGbnf, sampleGbnf } from "../../src/constrain/gbnf/index.ts";
import { jsonSchemaToGbnf, SchemaError } from "../../src/constrain/json-schema/index.ts";
import { mulberry32 } from "./mulberry32.ts";

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => void;

/** ajv for the draft `schema` declares (2020-12, 2019-09, else draft-07), strict mode off; null if it cannot compile. */
export function compileValidator(schema: unknown): ValidateFunction | null {
  const declared =
    typeof schema === "object" && schema !== null ? (schema as { $schema?: unknown }).$schema : undefined;
  const options = { strict: false, logger: false, allErrors: false } as const;
  const ajv =
    typeof declared === "string" && declared.includes("2020-12")
      ? new Ajv2020(options)
      : typeof declared === "string" && declared.includes("2019-09")
        ? new Ajv2019(options)
        : new Ajv(options);
  addFormats(ajv as Ajv);
  try {
    return ajv.compile((isOlderDraft(declared) ? asDraft7(schema) : schema) as object);
  } catch {
    return null;
  }
}

function isOlderDraft(declared: unknown): boolean {
  return typeof declared === "string" && /draft-0[346]/.test(declared);
}

/**
 * A draft-04/06 schema as draft-07 says the same: `id` is `$id`, a boolean `exclusiveMinimum` makes `minimum`
 * exclusive. ajv 8 has no draft-04 mode; without this most GitHub schemas could not be validated at all.
 */
function asDraft7(value: unknown, isRoot = true): unknown {
  if (Array.isArray(value)) return value.map((item) => asDraft7(item, false));
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (key === "$schema" && isRoot) continue;
    if (key === "id" && typeof child === "string") out.$id = child;
    else if (key === "enum" || key === "const" || key === "default" || key === "examples") out[key] = child;
    else out[key] = asDraft7(child, false);
  }
  for (const [bound, flag] of [
    ["minimum", "exclusiveMinimum"],
    ["maximum", "exclusiveMaximum"],
  ] as const) {
    if (typeof out[flag] !== "boolean") continue;
    if (out[flag] === true && typeof out[bound] === "number") {
      out[flag] = out[bound];
      delete out[bound];
    } else delete out[flag];
  }
  return out;
}

export interface InvalidSample {
  readonly sample: string;
  readonly reason: string;
}

export type SchemaCheck =
  | { readonly outcome: "rejected"; readonly error: SchemaError; readonly compileMs: number }
  | { readonly outcome: "crashed"; readonly error: unknown; readonly compileMs: number }
  | {
      readonly outcome: "converted";
      readonly grammar: string;
      readonly compileMs: number;
      /** False when ajv cannot compile the schema, so samples were not validated. */
      readonly isValidated: boolean;
      readonly numSamples: number;
      /** Samples the sampler gave up on (its length or depth budget ran out). */
      readonly numUnfinished: number;
      /** The finished samples, valid or not. */
      readonly samples: readonly string[];
      readonly invalid: readonly InvalidSample[];
    };

export function checkSchema(schema: unknown, options: { samples: number; seed: number }): SchemaCheck {
  const startedAtMs = performance.now();
  let grammarText: string;
  try {
    grammarText = jsonSchemaToGbnf(schema);
  } catch (error) {
    const compileMs = performance.now() - startedAtMs;
    if (error instanceof SchemaError) return { outcome: "rejected", error, compileMs };
    return { outcome: "crashed", error, compileMs };
  }
  const compileMs = performance.now() - startedAtMs;
  let grammar: ReturnType<typeof parseGbnf>;
  try {
    grammar = parseGbnf(grammarText);
  } catch (error) {
    return { outcome: "crashed", error, compileMs };
  }
  const validate = compileValidator(schema);
  const random = mulberry32(options.seed);
  const invalid: InvalidSample[] = [];
  const samples: string[] = [];
  let numUnfinished = 0;
  for (let i = 0; i < options.samples; i++) {
    const sample = sampleGbnf(grammar, random, { maxLength: 4000 });
    if (sample === null) {
      numUnfinished++;
      continue;
    }
    samples.push(sample);
    let value: unknown;
    try {
      value = JSON.parse(sample);
    } catch (error) {
      invalid.push({ sample, reason: `not JSON: ${(error as Error).message}` });
      continue;
    }
    if (validate !== null && !validate(value)) invalid.push({ sample, reason: JSON.stringify(validate.errors) });
  }
  return {
    outcome: "converted",
    grammar: grammarText,
    compileMs,
    isValidated: validate !== null,
    numSamples: options.samples,
    numUnfinished,
    samples,
    invalid,
  };
}
