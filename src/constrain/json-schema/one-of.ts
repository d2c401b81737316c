/**
 * `oneOf` as alternation, which is only exact when no value the grammar writes for one branch satisfies another.
 * For every ordered pair of branches a reason must be found, else the schema is refused:
 * - their types are disjoint, or every `enum` value of one fails the other;
 * - both are objects and a property one always writes is one the other constrains to disjoint values
 *   (a discriminator, e.g. `"kind": {"const": "circle"}` against `"kind": {"const": "square"}`);
 * - the other requires a property this one never writes; an optional one is left out of this branch's grammar to
 *   make it so (stricter);
 * - the other forbids extra properties and this one always writes a property the other does not declare.
 * Branches are checked after the enclosing schema's keywords were merged into each.
 */

import type { SchemaPart } from "./merge-schemas.ts";
import { isSchemaObject, type NormalSchema, normalizeSchema } from "./normalize-schema.ts";
import { SchemaError } from "./schema-error.ts";
import { acceptedTypes, areTypesDisjoint, grammarTypes } from "./schema-types.ts";
import { checkValue } from "./value-check.ts";

const MAX_PROOF_DEPTH = 4;

export interface ProofEnvironment {
  resolve(ref: string, pointer: string): SchemaPart;
  work(pointer: string): void;
}

/**
 * Checks every pair; returns the branches, some with optional properties left out. Throws
 * `unsupported_keyword` "oneOf" naming the first pair it cannot separate.
 */
export function makeExclusive(
  branches: readonly NormalSchema[],
  pointer: string,
  env: ProofEnvironment,
): NormalSchema[] {
  const out = [...branches];
  for (let i = 0; i < out.length; i++) {
    for (let j = 0; j < out.length; j++) {
      if (i === j) continue;
      env.work(pointer);
      const separated = separate(out[i] as NormalSchema, out[j] as NormalSchema, env, 0);
      if (separated === null) {
        throw new SchemaError("unsupported_keyword", "oneOf", pointer, `branches ${i} and ${j} may both match`);
      }
      out[i] = separated;
    }
  }
  return out;
}

/** `a`, possibly narrowed, such that nothing its grammar writes satisfies `b`; null when no reason is found. */
function separate(a: NormalSchema, b: NormalSchema, env: ProofEnvironment, depth: number): NormalSchema | null {
  if (areTypesDisjoint(grammarTypes(a), acceptedTypes(b))) return a;
  if (a.enum?.every((value) => checkValue(b, value) === false)) return a;
  const types = grammarTypes(a);
  if (types.length !== 1 || types[0] !== "object" || depth >= MAX_PROOF_DEPTH) return null;
  const aProperties = isSchemaObject(a.properties) ? a.properties : {};
  const bProperties = isSchemaObject(b.properties) ? b.properties : {};
  const aRequired = (a.required as string[] | undefined) ?? [];
  for (const name of aRequired) {
    if (!Object.hasOwn(aProperties, name) || !Object.hasOwn(bProperties, name)) continue;
    const aValue = shallow(aProperties[name], env);
    const bValue = shallow(bProperties[name], env);
    if (aValue !== null && bValue !== null && separate(aValue, bValue, env, depth + 1) === aValue) return a;
  }
  if (b.additionalProperties === false && b.patternProperties === undefined) {
    if (aRequired.some((name) => !Object.hasOwn(bProperties, name))) return a;
  }
  if (depth > 0) return null;
  return narrowByRequired(a, b);
}

/** Leaves out of `a` one property `b` requires and `a` does not, when `a` writes no undeclared properties. */
function narrowByRequired(a: NormalSchema, b: NormalSchema): NormalSchema | null {
  if (a.additionalProperties !== undefined && a.additionalProperties !== false) return null;
  if (a.patternProperties !== undefined) return null;
  const aRequired = (a.required as string[] | undefined) ?? [];
  const aProperties = isSchemaObject(a.properties) ? a.properties : {};
  for (const name of (b.required as string[] | undefined) ?? []) {
    if (aRequired.includes(name)) continue;
    if (!Object.hasOwn(aProperties, name) || aProperties[name] === false) return a;
    return { ...a, properties: { ...aProperties, [name]: false } };
  }
  return null;
}

/** A property's schema with one `$ref` followed, normalized; null when it cannot be read. */
function shallow(schema: unknown, env: ProofEnvironment): NormalSchema | null {
  let current = schema;
  if (isSchemaObject(current) && typeof current.$ref === "string" && Object.keys(current).length === 1) {
    current = env.resolve(current.$ref, "").schema;
  }
  if (current === true) return {};
  if (!isSchemaObject(current)) return null;
  const normal = normalizeSchema(current, "");
  if (
    normal.$ref !== undefined ||
    normal.allOf !== undefined ||
    normal.anyOf !== undefined ||
    normal.oneOf !== undefined
  ) {
    return null;
  }
  return normal;
}
