import assert from "node:assert/strict";
import { test } from "node:test";
import { jsonSchemaToGbnf, SchemaError } from "../../../src/constrain/json-schema/index.ts";

/** The SchemaError converting `schema` throws, as code, keyword and pointer. */
function refusal(schema: unknown): { code: string; keyword: string; pointer: string; message: string } {
  try {
    jsonSchemaToGbnf(schema);
  } catch (error) {
    assert.ok(error instanceof SchemaError, `expected a SchemaError, got ${String(error)}`);
    assert.equal(error.name, "SchemaError");
    return { code: error.code, keyword: error.keyword, pointer: error.pointer, message: error.message };
  }
  assert.fail("the schema was converted");
}

function expectRefusal(schema: unknown, code: string, keyword: string, pointer: string): void {
  const { message, ...rest } = refusal(schema);
  assert.deepEqual(rest, { code, keyword, pointer });
  assert.ok(message.includes(`"${keyword}"`) || message.includes(`(${keyword})`), message);
  assert.ok(message.includes(` at ${pointer === "" ? "/" : pointer}`), message);
}

test("the message names the keyword and the pointer", () => {
  const schema = { type: "object", properties: { tags: { type: "array", uniqueItems: true } } };
  assert.match(refusal(schema).message, /^unsupported keyword "uniqueItems" at \/properties\/tags/);
});

test("keywords without an exact grammar are refused where they are", () => {
  const cases: [unknown, string, string][] = [
    [{ properties: { a: { not: { type: "null" } } } }, "not", "/properties/a"],
    [JSON.parse('{"if": {"type": "string"}, "then": {"minLength": 1}}'), "if", ""],
    [{ items: { type: "integer", multipleOf: 3 } }, "multipleOf", "/items"],
    [{ type: "array", contains: { type: "integer" } }, "contains", ""],
    [{ type: "array", items: { type: "integer" }, uniqueItems: true }, "uniqueItems", ""],
    [{ type: "object", properties: { a: {} }, minProperties: 1 }, "minProperties", ""],
    [{ type: "object", additionalProperties: true, maxProperties: 3 }, "maxProperties", ""],
    [{ type: "string", format: "phone-number" }, "format", ""],
    [{ type: "string", pattern: "(?=a)b" }, "pattern", ""],
    [{ type: "string", pattern: "(a)\\1" }, "pattern", ""],
    [{ type: "string", pattern: "\\bword" }, "pattern", ""],
    [{ type: "string", pattern: "\\p{L}" }, "pattern", ""],
    [{ oneOf: [{ type: "number" }, { type: "integer" }] }, "oneOf", "/oneOf"],
    [{ oneOf: [{ type: "string" }, { type: "string", maxLength: 3 }] }, "oneOf", "/oneOf"],
    [{ allOf: [{ type: "string", pattern: "^a" }, { pattern: "b$" }] }, "pattern", "/allOf/1"],
    [
      { $defs: { x: { type: "object", dependentSchemas: { a: {} }, properties: { a: {} } } }, $ref: "#/$defs/x" },
      "dependentSchemas",
      "/$defs/x",
    ],
    [
      { type: "object", properties: { a: {} }, additionalProperties: true, propertyNames: { maxLength: 3 } },
      "propertyNames",
      "",
    ],
  ];
  for (const [schema, keyword, pointer] of cases) expectRefusal(schema, "unsupported_keyword", keyword, pointer);
});

test("schemas no value satisfies are invalid", () => {
  expectRefusal(false, "invalid_schema", "false", "");
  expectRefusal({ type: "string", enum: [1, 2] }, "invalid_schema", "enum", "");
  expectRefusal({ type: "integer", minimum: 5, maximum: 4 }, "invalid_schema", "minimum", "");
  expectRefusal({ type: "string", minLength: 3, maxLength: 2 }, "invalid_schema", "minLength", "");
  expectRefusal({ allOf: [{ type: "string" }, { type: "integer" }] }, "invalid_schema", "allOf", "");
  expectRefusal({ type: "object", required: ["a"], additionalProperties: false }, "invalid_schema", "required", "");
  expectRefusal({ type: "string", pattern: "[" }, "invalid_schema", "pattern", "");
  expectRefusal({ type: "strin" }, "invalid_schema", "type", "");
});

test("refs that loop without consuming input are refused, never followed forever", () => {
  expectRefusal({ $ref: "#" }, "unresolvable_ref", "$ref", "");
  expectRefusal(
    { $defs: { a: { $ref: "#/$defs/b" }, b: { $ref: "#/$defs/a" } }, $ref: "#/$defs/a" },
    "unresolvable_ref",
    "$ref",
    "/$defs/b",
  );
  expectRefusal({ anyOf: [{ $ref: "#" }, { type: "null" }] }, "unresolvable_ref", "$ref", "/anyOf/0");
  expectRefusal(
    { $defs: { a: { allOf: [{ $ref: "#/$defs/a" }] } }, $ref: "#/$defs/a" },
    "unresolvable_ref",
    "$ref",
    "/$defs/a/allOf/0",
  );
});

test("a ref below a nested $id is refused, not resolved against the wrong base", () => {
  const schema = {
    properties: { a: { $id: "http://example.com/a.json", properties: { b: { $ref: "#/definitions/c" } } } },
  };
  expectRefusal(schema, "unresolvable_ref", "$ref", "/properties/a/properties/b");
});

test("refs outside the document or at nothing are unresolvable", () => {
  expectRefusal({ $ref: "other.json#/a" }, "unresolvable_ref", "$ref", "");
  expectRefusal({ properties: { a: { $ref: "#/definitions/missing" } } }, "unresolvable_ref", "$ref", "/properties/a");
});

test("hostile schemas are refused or served quickly", () => {
  let deep: unknown = { type: "string" };
  for (let i = 0; i < 10_000; i++) deep = { type: "array", items: deep };
  const manyProperties = {
    type: "object",
    properties: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`p${i}`, { type: "string" }])),
  };
  const hostile: [string, unknown, string][] = [
    ["10,000 levels of nesting", deep, "maxDocumentDepth"],
    ["20,000 properties", manyProperties, "maxObjectProperties"],
    ["minItems 100000", { type: "array", minItems: 100_000 }, "minItems"],
    ["a pattern repeated 100000 times", { type: "string", pattern: "^a{100000}$" }, "pattern"],
  ];
  for (const [what, schema, keyword] of hostile) {
    const startedAtMs = performance.now();
    const { code, keyword: actual } = refusal(schema);
    assert.deepEqual({ code, keyword: actual }, { code: "schema_too_large", keyword }, what);
    assert.ok(performance.now() - startedAtMs < 1_000, `${what} took too long`);
  }
});

test("a huge maxLength or maxItems is lowered to the repetition limit", () => {
  assert.match(jsonSchemaToGbnf({ type: "string", maxLength: 1e9 }), /char\{0,1000\}/);
  assert.match(jsonSchemaToGbnf({ type: "array", maxItems: 1e9 }), /\{0,999\}/);
});

test("limits can be lowered per call", () => {
  const schema = { type: "object", properties: { a: { type: "string" }, b: { type: "integer" } } };
  const error = (() => {
    try {
      jsonSchemaToGbnf(schema, { limits: { maxRules: 3 } });
    } catch (caught) {
      return caught;
    }
  })();
  assert.ok(error instanceof SchemaError);
  assert.deepEqual([error.code, error.keyword], ["schema_too_large", "maxRules"]);
});
