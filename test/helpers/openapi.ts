// Validates values against OpenAI's published OpenAPI description so tests
// check wire compatibility against the source of truth rather than against
// our own (possibly equally wrong) idea of the format.

import { AssertionError } from "node:assert";
import { createHash } from "node:crypto";
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ErrorObject, ValidateFunction } from "ajv";
// The named export is used because the default export of these CommonJS
// builds resolves differently under the type checker and at runtime.
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { parse as parseYaml } from "yaml";

export interface OpenApiValidationResult {
  ok: boolean;
  /** One line per problem, empty when `ok`. */
  errors: string;
}

export type OpenApiValidator = (value: unknown) => OpenApiValidationResult;

const helperPath = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(helperPath), "../..");
const specPath = path.resolve(repoRoot, "../shared/spec/openai-openapi.yaml");

const COMPONENT_REF_PREFIX = "#/components/schemas/";
const DEFS_REF_PREFIX = "#/$defs/";

// Annotation-only keys that either break Ajv or only bloat the cache.
const DROPPED_KEYS = new Set(["discriminator", "example", "description", "$recursiveAnchor"]);

// Keywords whose values are schemas; everything else (enum, const, default,
// required...) is data and must not be rewritten, or a property that happens
// to be called "description" or "nullable" would be mangled.
const SCHEMA_MAP_KEYWORDS = new Set(["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"]);
const SCHEMA_LIST_KEYWORDS = new Set(["allOf", "anyOf", "oneOf", "prefixItems"]);
const SCHEMA_KEYWORDS = new Set([
  "items",
  "additionalItems",
  "additionalProperties",
  "not",
  "if",
  "then",
  "else",
  "contains",
  "propertyNames",
  "unevaluatedItems",
  "unevaluatedProperties",
]);

type SchemaMap = Record<string, unknown>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function mapRecord(record: Record<string, unknown>, fn: (value: unknown) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) out[key] = fn(value);
  return out;
}

/** Turns one OpenAPI schema object into something Ajv2020 compiles. */
function preprocessSchema(node: unknown, componentName: string): unknown {
  if (!isRecord(node)) return node;
  const out: Record<string, unknown> = {};
  let nullable = false;
  for (const [key, value] of Object.entries(node)) {
    if (DROPPED_KEYS.has(key) || key.startsWith("x-")) continue;
    if (key === "nullable") {
      nullable = value === true;
    } else if (key === "$ref" && typeof value === "string" && value.startsWith(COMPONENT_REF_PREFIX)) {
      out.$ref = DEFS_REF_PREFIX + value.slice(COMPONENT_REF_PREFIX.length);
    } else if (key === "$recursiveRef" && value === "#") {
      // Draft 2019-09 self-recursion; once components live under $defs,
      // "#" would point at the wrapper document instead of the component.
      out.$ref = DEFS_REF_PREFIX + componentName;
    } else if (SCHEMA_MAP_KEYWORDS.has(key) && isRecord(value)) {
      out[key] = mapRecord(value, (sub) => preprocessSchema(sub, componentName));
    } else if (SCHEMA_LIST_KEYWORDS.has(key) && Array.isArray(value)) {
      out[key] = value.map((sub: unknown) => preprocessSchema(sub, componentName));
    } else if (SCHEMA_KEYWORDS.has(key)) {
      out[key] = Array.isArray(value)
        ? value.map((sub: unknown) => preprocessSchema(sub, componentName))
        : preprocessSchema(value, componentName);
    } else {
      out[key] = value;
    }
  }
  // Wrapping rather than adding "null" to `type` also lets null through an
  // `enum` or `$ref` that does not list it, which is what OpenAPI 3.0 meant.
  return nullable ? { anyOf: [out, { type: "null" }] } : out;
}

function preprocessComponents(raw: unknown): SchemaMap {
  const schemas = isRecord(raw) && isRecord(raw.components) ? raw.components.schemas : undefined;
  if (!isRecord(schemas)) throw new Error(`No components.schemas in ${specPath}`);
  const out: SchemaMap = {};
  for (const [name, schema] of Object.entries(schemas)) out[name] = preprocessSchema(schema, name);
  return out;
}

let componentSchemas: SchemaMap | undefined;

/**
 * Parsing the YAML costs seconds, so the preprocessed components are kept in
 * memory for this process and in a temp file for the next test processes.
 * The cache key covers this file too, so changing the preprocessing can never
 * serve stale output.
 */
function loadComponentSchemas(): SchemaMap {
  if (componentSchemas) return componentSchemas;
  const specBytes = readFileSync(specPath);
  const key = createHash("sha256").update(specBytes).update(readFileSync(helperPath)).digest("hex");
  const cachePath = path.join(tmpdir(), `pagoda-openai-openapi-${key}.json`);

  try {
    const cached: unknown = JSON.parse(readFileSync(cachePath, "utf8"));
    if (isRecord(cached)) {
      componentSchemas = cached;
      return cached;
    }
  } catch {
    // Missing or half-written cache: rebuild below.
  }

  const schemas = preprocessComponents(parseYaml(specBytes.toString("utf8")));
  // Write-then-rename so parallel test processes never read a partial file.
  const partialPath = `${cachePath}.${process.pid}.tmp`;
  try {
    writeFileSync(partialPath, JSON.stringify(schemas));
    renameSync(partialPath, cachePath);
  } catch {
    // The cache is only a speed-up; an unwritable temp dir must not fail tests.
    try {
      unlinkSync(partialPath);
    } catch {
      // Nothing was written.
    }
  }
  componentSchemas = schemas;
  return schemas;
}

/** The named component plus every component it reaches through $ref. */
function collectReachable(schemas: SchemaMap, rootName: string): SchemaMap {
  const reached: SchemaMap = {};
  const pending = [rootName];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item);
    } else if (isRecord(node)) {
      for (const [key, value] of Object.entries(node)) {
        if (key === "$ref" && typeof value === "string" && value.startsWith(DEFS_REF_PREFIX)) {
          pending.push(value.slice(DEFS_REF_PREFIX.length));
        } else {
          visit(value);
        }
      }
    }
  };
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (Object.hasOwn(reached, name)) continue;
    if (!Object.hasOwn(schemas, name)) throw new Error(`OpenAPI schema refers to missing component "${name}"`);
    reached[name] = schemas[name];
    visit(schemas[name]);
  }
  return reached;
}

type FormatsPlugin = (ajv: Ajv2020) => Ajv2020;

// Depending on the loader the default import is either the plugin itself or
// the CommonJS exports object carrying it as `default`.
function resolveFormatsPlugin(): FormatsPlugin {
  const candidate: unknown = addFormatsModule;
  if (typeof candidate === "function") return candidate as FormatsPlugin;
  if (isRecord(candidate) && typeof candidate.default === "function") return candidate.default as FormatsPlugin;
  throw new Error("ajv-formats did not export a plugin function");
}

// OpenAI documents these as Unix timestamps in seconds; the upper bound (year
// 5138) rejects millisecond values such as a bare Date.now(), which clients
// would misread by a factor of 1000.
const MAX_UNIX_SECONDS = 1e11;

let ajvInstance: Ajv2020 | undefined;

function getAjv(): Ajv2020 {
  if (ajvInstance) return ajvInstance;
  // useDefaults stays off: validation must never fill in the spec's defaults
  // and thereby hide a field the server forgot to send.
  const ajv = new Ajv2020({ strict: false, allErrors: true, useDefaults: false, coerceTypes: false });
  resolveFormatsPlugin()(ajv);
  ajv.addFormat("unixtime", {
    type: "number",
    validate: (value: number) => Number.isInteger(value) && value >= 0 && value < MAX_UNIX_SECONDS,
  });
  ajvInstance = ajv;
  return ajv;
}

function describeError(error: ErrorObject): string {
  const where = error.instancePath === "" ? "(root)" : error.instancePath;
  let detail = error.message ?? error.keyword;
  const params: Record<string, unknown> = error.params;
  if (Array.isArray(params.allowedValues)) detail += `: ${JSON.stringify(params.allowedValues)}`;
  if (typeof params.additionalProperty === "string") detail += `: "${params.additionalProperty}"`;
  return `${where} ${detail} (${error.schemaPath})`;
}

function formatErrors(errors: readonly ErrorObject[] | null | undefined): string {
  if (!errors || errors.length === 0) return "";
  return [...new Set(errors.map(describeError))].join("\n");
}

const validators = new Map<string, OpenApiValidator>();

/**
 * Returns a validator for `components.schemas[schemaName]` of OpenAI's
 * OpenAPI description. Compiled on first request and cached per name.
 */
export function getOpenApiValidator(schemaName: string): OpenApiValidator {
  const existing = validators.get(schemaName);
  if (existing) return existing;

  const schemas = loadComponentSchemas();
  if (!Object.hasOwn(schemas, schemaName)) {
    throw new Error(`"${schemaName}" is not a schema in the OpenAI OpenAPI description`);
  }
  // Only the reachable components are compiled, which keeps compilation in
  // the milliseconds even though the description has over a thousand.
  const compiled: ValidateFunction = getAjv().compile({
    $defs: collectReachable(schemas, schemaName),
    $ref: DEFS_REF_PREFIX + schemaName,
  });
  const validator: OpenApiValidator = (value) => {
    const ok = compiled(value);
    return { ok, errors: ok ? "" : formatErrors(compiled.errors) };
  };
  validators.set(schemaName, validator);
  return validator;
}

/** Throws an AssertionError listing every mismatch when `value` does not fit the schema. */
export function assertMatchesSchema(schemaName: string, value: unknown, message?: string): void {
  const result = getOpenApiValidator(schemaName)(value);
  if (result.ok) return;
  const heading = message ?? `Value does not match OpenAI schema ${schemaName}`;
  throw new AssertionError({
    message: `${heading}:\n${result.errors}`,
    actual: value,
    expected: schemaName,
    operator: "matchesOpenApiSchema",
  });
}
