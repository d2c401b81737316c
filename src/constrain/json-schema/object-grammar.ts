/**
 * Grammar for objects. Declared properties come in the order the schema lists them (stricter than JSON Schema,
 * which allows any order; llama.cpp and vLLM do the same), required ones always, optional ones possibly not.
 * With `additionalProperties` unspecified no other property is written (stricter: the schema allows them, but
 * OpenAI's strict mode demands `false` anyway and a model filling in a schema wants no extras). Extra properties,
 * when the schema gives `additionalProperties` or `patternProperties`, come after the declared ones.
 */
import { alternatives, gbnfLiteral, sequence } from "./gbnf-builder.ts";
import type { GrammarContext } from "./grammar-context.ts";
import { childPointer } from "./json-pointer.ts";
import { keyExcludingGbnf } from "./key-exclusion.ts";
import { CONSTRAINING_KEYWORDS } from "./keywords.ts";
import { isSchemaObject, type NormalSchema } from "./normalize-schema.ts";
import { patternsGbnf } from "./regex-to-gbnf.ts";
import { SchemaError } from "./schema-error.ts";
import { checkValue } from "./value-check.ts";

/** Rule bodies longer than this are named instead of repeated where they are used twice. */
const INLINE_MAX_CHARS = 60;

interface Member {
  readonly name: string;
  readonly schema: unknown;
  readonly pointer: string;
  isRequired: boolean;
}

export function objectGrammar(schema: NormalSchema, pointer: string, depth: number, context: GrammarContext): string {
  const { builder, rules } = context;
  const ws = rules.ws;
  const members = declaredMembers(schema, pointer);
  if (members.length > context.limits.maxObjectProperties) {
    const limit = context.limits.maxObjectProperties;
    throw new SchemaError("schema_too_large", "maxObjectProperties", pointer, `more than ${limit} properties`);
  }
  const patterns = isSchemaObject(schema.patternProperties) ? Object.entries(schema.patternProperties) : [];
  const additional = patterns.length > 0 ? undefined : schema.additionalProperties;
  const hasExtras = patterns.length > 0 || (additional !== undefined && additional !== false);
  applyDependencies(schema, members, hasExtras, pointer);
  const keyRule = applyPropertyNames(schema, members, hasExtras, pointer, depth, context);
  const emitted = members.filter((member) => member.schema !== false);
  checkCounts(schema, emitted, hasExtras, pointer);

  const extraKeyValues: string[] = [];
  if (additional !== undefined && additional !== false) {
    const names = members.map((member) => member.name);
    const key = keyRule ?? (names.length === 0 ? rules.string : keyExcludingGbnf(names, builder, pointer));
    const value = context.child(additional, childPointer(pointer, "additionalProperties"), depth + 1);
    extraKeyValues.push(sequence([key, ws, '":"', ws, value, ws]));
  }
  if (patterns.length > 0) extraKeyValues.push(patternMember(patterns, members, pointer, depth, context));
  const extra = extraKeyValues.length === 0 ? "" : builder.rule("extra-member", alternatives(extraKeyValues), pointer);
  const separator = `"," ${ws}`;

  // Built from the last property back: `afterSome` follows once a member was written (so it starts with a comma),
  // `firstAlts` are the ways to write the members from here when none was written yet.
  let afterSome = extra === "" ? "" : `(${separator} ${extra})*`;
  // Alternatives in reverse order, so prepending is a push.
  const firstAlts: string[] = [extra === "" ? "" : `(${extra} (${separator} ${extra})*)?`];
  for (let i = emitted.length - 1; i >= 0; i--) {
    const member = emitted[i] as Member;
    const value = context.child(member.schema, member.pointer, depth + 1);
    const keyValue = sequence([gbnfLiteral(JSON.stringify(member.name)), ws, '":"', ws, value, ws]);
    const rest = afterSome.length > INLINE_MAX_CHARS ? builder.rule("members", afterSome, pointer) : afterSome;
    const first = sequence([keyValue, rest]);
    if (member.isRequired) firstAlts.length = 0;
    firstAlts.push(first);
    afterSome = member.isRequired
      ? sequence([separator, keyValue, rest])
      : sequence([`(${separator} ${keyValue})?`, rest]);
  }
  firstAlts.reverse();
  const nonEmpty = firstAlts.filter((alt) => alt !== "");
  const body =
    nonEmpty.length === firstAlts.length
      ? alternatives(nonEmpty)
      : nonEmpty.length === 0
        ? ""
        : `(${alternatives(nonEmpty)})?`;
  return builder.rule("object", sequence([`"{" ${ws}`, body, '"}"']), pointer);
}

function declaredMembers(schema: NormalSchema, pointer: string): Member[] {
  const properties = isSchemaObject(schema.properties) ? schema.properties : {};
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const members: Member[] = Object.entries(properties).map(([name, sub]) => ({
    name,
    schema: sub,
    pointer: childPointer(pointer, "properties", name),
    isRequired: required.has(name),
  }));
  for (const name of required) {
    if (Object.hasOwn(properties, name)) continue;
    // A required property the schema does not declare takes the schema of the properties it did not declare.
    const patternSchemas = matchingPatternSchemas(schema, name, pointer);
    const fallback = schema.additionalProperties ?? schema.unevaluatedProperties ?? true;
    const sub = patternSchemas.length > 0 ? { allOf: patternSchemas } : fallback;
    if (sub === false) throw new SchemaError("invalid_schema", "required", pointer, `"${name}" can never be present`);
    members.push({ name, schema: sub, pointer: childPointer(pointer, "required"), isRequired: true });
  }
  for (const member of members) {
    if (member.isRequired && member.schema === false) {
      throw new SchemaError("invalid_schema", "required", pointer, `"${member.name}" can never be present`);
    }
  }
  return members;
}

function matchingPatternSchemas(schema: NormalSchema, name: string, pointer: string): unknown[] {
  if (!isSchemaObject(schema.patternProperties)) return [];
  const out: unknown[] = [];
  for (const [pattern, sub] of Object.entries(schema.patternProperties)) {
    let isMatch: boolean;
    try {
      isMatch = new RegExp(pattern, "u").test(name);
    } catch (error) {
      throw new SchemaError("invalid_schema", "patternProperties", pointer, `invalid pattern "${pattern}"`, {
        cause: error,
      });
    }
    if (isMatch) out.push(sub);
  }
  return out;
}

/**
 * Extra members whose keys match one of `patternProperties`. A key may match several patterns, so every extra
 * value satisfies all the pattern schemas (stricter when there are several).
 */
function patternMember(
  patterns: readonly [string, unknown][],
  members: readonly Member[],
  pointer: string,
  depth: number,
  context: GrammarContext,
): string {
  const at = childPointer(pointer, "patternProperties");
  for (const member of members) {
    if (matchingPatternSchemas({ patternProperties: Object.fromEntries(patterns) }, member.name, at).length > 0) {
      throw new SchemaError(
        "unsupported_keyword",
        "patternProperties",
        at,
        `property "${member.name}" matches a pattern`,
      );
    }
  }
  const keys = patterns.map(([pattern]) => {
    const context2 = { builder: context.builder, limits: context.limits, pointer: at, isJsonString: true };
    return sequence(['"\\""', patternsGbnf([pattern], { min: 0, max: null }, context2), '"\\""']);
  });
  const schemas = patterns.map(([, sub]) => sub);
  const value = context.child(schemas.length === 1 ? schemas[0] : { allOf: schemas }, at, depth + 1);
  const ws = context.rules.ws;
  return sequence([context.builder.rule("pattern-key", alternatives(keys), at), ws, '":"', ws, value, ws]);
}

/**
 * `dependentRequired`: when the trigger can be present, its dependencies become required (stricter when the
 * trigger is optional); a trigger whose dependencies can never be present is left out, or refused if required.
 */
function applyDependencies(schema: NormalSchema, members: Member[], hasExtras: boolean, pointer: string): void {
  const dependencies = isSchemaObject(schema.dependentRequired) ? schema.dependentRequired : {};
  const byName = new Map(members.map((member) => [member.name, member]));
  const canBePresent = (name: string) => {
    const member = byName.get(name);
    return member !== undefined && member.schema !== false;
  };
  for (const trigger of Object.keys(isSchemaObject(schema.dependentSchemas) ? schema.dependentSchemas : {})) {
    if (canBePresent(trigger) || hasExtras)
      throw new SchemaError("unsupported_keyword", "dependentSchemas", pointer, "");
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const [trigger, names] of Object.entries(dependencies)) {
      if (!Array.isArray(names)) throw new SchemaError("invalid_schema", "dependentRequired", pointer, "");
      const member = byName.get(trigger);
      if (member === undefined || member.schema === false) {
        if (hasExtras)
          throw new SchemaError("unsupported_keyword", "dependentRequired", pointer, `"${trigger}" is not declared`);
        continue;
      }
      if (!names.every((name) => canBePresent(String(name)))) {
        if (member.isRequired) {
          throw new SchemaError(
            "invalid_schema",
            "dependentRequired",
            pointer,
            `"${trigger}" needs an absent property`,
          );
        }
        byName.set(trigger, Object.assign(member, { schema: false }));
        changed = true;
        continue;
      }
      for (const name of names) {
        const dependency = byName.get(String(name));
        if (dependency !== undefined && !dependency.isRequired) {
          dependency.isRequired = true;
          changed = true;
        }
      }
    }
  }
}

/**
 * `propertyNames` holds for declared names or leaves them out; for extra keys it is the key's grammar, when the
 * object declares no names the extra keys would also have to avoid. Returns that key grammar, if any.
 */
function applyPropertyNames(
  schema: NormalSchema,
  members: Member[],
  hasExtras: boolean,
  pointer: string,
  depth: number,
  context: GrammarContext,
): string | null {
  const rule = schema.propertyNames;
  if (rule === undefined || rule === true || isStringTypeOnly(rule)) return null;
  for (const member of members) {
    const verdict = checkValue(rule, member.name);
    if (typeof verdict === "object") throw new SchemaError("unsupported_keyword", "propertyNames", pointer, "");
    if (verdict) continue;
    if (member.isRequired) throw new SchemaError("invalid_schema", "propertyNames", pointer, `"${member.name}"`);
    Object.assign(member, { schema: false });
  }
  if (!hasExtras) return null;
  if (members.length > 0 || schema.patternProperties !== undefined || !isSchemaObject(rule)) {
    throw new SchemaError("unsupported_keyword", "propertyNames", pointer, "alongside declared and extra properties");
  }
  // Keys are strings, so the key grammar is the string part of the rule.
  return context.child({ allOf: [rule, { type: "string" }] }, childPointer(pointer, "propertyNames"), depth + 1);
}

/** `{"type": "string"}` and the like: every key satisfies it. */
function isStringTypeOnly(rule: unknown): boolean {
  if (!isSchemaObject(rule)) return false;
  const constraining = Object.keys(rule).filter((keyword) => CONSTRAINING_KEYWORDS.has(keyword));
  if (constraining.length === 0) return true;
  const type = rule.type;
  return constraining.length === 1 && (type === "string" || (Array.isArray(type) && type.includes("string")));
}

function checkCounts(schema: NormalSchema, emitted: readonly Member[], hasExtras: boolean, pointer: string): void {
  const minProperties = schema.minProperties as number | undefined;
  if (minProperties !== undefined && emitted.filter((member) => member.isRequired).length < minProperties) {
    throw new SchemaError("unsupported_keyword", "minProperties", pointer, "more than the required properties");
  }
  const maxProperties = schema.maxProperties as number | undefined;
  if (maxProperties !== undefined && (hasExtras || emitted.length > maxProperties)) {
    throw new SchemaError("unsupported_keyword", "maxProperties", pointer, "fewer than the declared properties");
  }
}
