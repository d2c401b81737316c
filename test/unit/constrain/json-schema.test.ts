import assert from "node:assert/strict";
import { test } from "node:test";
import { matchesGbnf, parseGbnf } from "../../../src/constrain/gbnf/index.ts";
import { JSON_OBJECT_GBNF, jsonSchemaToGbnf, regexToGbnf } from "../../../src/constrain/json-schema/index.ts";

/** Whether the grammar for `schema` accepts each text, as a map from text to verdict. */
function verdicts(schema: unknown, texts: readonly string[]): Record<string, boolean> {
  const grammar = parseGbnf(jsonSchemaToGbnf(schema));
  return Object.fromEntries(texts.map((text) => [text, matchesGbnf(grammar, text)]));
}

function expectVerdicts(schema: unknown, expected: Record<string, boolean>): void {
  assert.deepEqual(verdicts(schema, Object.keys(expected)), expected);
}

test("every grammar has a root rule first", () => {
  assert.match(jsonSchemaToGbnf({ type: "string" }), /^root ::= /);
  assert.match(JSON_OBJECT_GBNF, /^root ::= /);
});

test("json_object accepts any object and nothing else", () => {
  const grammar = parseGbnf(JSON_OBJECT_GBNF);
  assert.equal(matchesGbnf(grammar, '{"a": [1, {"b": null}], "c": "x"}'), true);
  assert.equal(matchesGbnf(grammar, "{}"), true);
  assert.equal(matchesGbnf(grammar, "[1]"), false);
  assert.equal(matchesGbnf(grammar, '"x"'), false);
});

test("scalar types accept their values only", () => {
  expectVerdicts({ type: "null" }, { null: true, '"null"': false });
  expectVerdicts({ type: "boolean" }, { true: true, false: true, "1": false });
  expectVerdicts({ type: "integer" }, { "0": true, "-12": true, "1.5": false, "01": false, "1e3": false });
  expectVerdicts({ type: "number" }, { "-1.25": true, "3": true, "1e10": true, ".5": false, "1.": false });
  expectVerdicts({ type: "string" }, { '"a\\"b\\u00e9"': true, '"\\ud83d\\ude00"': false, '"a': false, '"\t"': false });
});

test("a type array is the union of its types", () => {
  expectVerdicts({ type: ["string", "null"] }, { null: true, '"x"': true, "1": false });
});

test("the empty schema and true accept any JSON value", () => {
  for (const schema of [{}, true]) {
    expectVerdicts(schema, { '{"a":[1,2,{"b":null}]}': true, '"s"': true, "-0.5": true, nul: false });
  }
});

test("enum and const accept exactly their values in compact JSON", () => {
  expectVerdicts(
    { enum: ["red", 1, null, { a: [1] }] },
    { '"red"': true, "1": true, null: true, '{"a":[1]}': true, '"blue"': false },
  );
  expectVerdicts({ const: "x" }, { '"x"': true, '"y"': false });
  expectVerdicts({ type: "string", enum: ["a", 1] }, { '"a"': true, "1": false });
});

test("properties come in schema order with required ones present", () => {
  const schema = {
    type: "object",
    properties: { a: { type: "integer" }, b: { type: "string" }, c: { type: "boolean" } },
    required: ["b"],
  };
  expectVerdicts(schema, {
    '{"b":"x"}': true,
    '{"a":1,"b":"x"}': true,
    '{"a": 1, "b": "x", "c": true}': true,
    '{\n  "b": "x",\n  "c": false\n}': true,
    '{"a":1}': false,
    '{"b":"x","a":1}': false,
    '{"b":"x","d":1}': false,
    "{}": false,
  });
});

test("an object whose properties are all optional may be empty", () => {
  expectVerdicts(
    { type: "object", properties: { a: { type: "integer" } } },
    { "{}": true, '{"a":1}': true, '{"a":1,}': false },
  );
});

test("additionalProperties true or a schema allows other keys after the declared ones", () => {
  const schema = {
    type: "object",
    properties: { id: { type: "integer" } },
    required: ["id"],
    additionalProperties: { type: "string" },
  };
  expectVerdicts(schema, {
    '{"id":1,"name":"x","other":"y"}': true,
    '{"id":1,"name":2}': false,
    '{"id":1,"id":"x"}': false,
    '{"id":1,"i":"x","idx":"y"}': true,
  });
  expectVerdicts({ type: "object", additionalProperties: { type: "integer" } }, { '{"a":1,"b":2}': true, "{}": true });
});

test("additionalProperties false and unspecified allow no other keys", () => {
  for (const extra of [{}, { additionalProperties: false }]) {
    expectVerdicts(
      { type: "object", properties: { a: { type: "null" } }, ...extra },
      { '{"a":null}': true, '{"b":null}': false },
    );
  }
});

test("items, minItems and maxItems bound arrays exactly", () => {
  const schema = { type: "array", items: { type: "integer" }, minItems: 1, maxItems: 3 };
  expectVerdicts(schema, { "[]": false, "[1]": true, "[1, 2, 3]": true, "[1,2,3,4]": false, '["a"]': false });
});

test("prefixItems and tuple items fix positions, then items or additionalItems", () => {
  const draft2020 = {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    prefixItems: [{ type: "string" }, { type: "integer" }],
    items: false,
    minItems: 1,
  };
  expectVerdicts(draft2020, { '["a"]': true, '["a",1]': true, '["a",1,2]': false, "[1]": false, "[]": false });
  const draft7 = { type: "array", items: [{ type: "string" }], additionalItems: { type: "boolean" } };
  expectVerdicts(draft7, { "[]": true, '["a",true,false]': true, '["a","b"]': false });
});

test("string lengths count characters, escapes included as one", () => {
  expectVerdicts(
    { type: "string", minLength: 2, maxLength: 3 },
    { '"ab"': true, '"a\\nb"': true, '"a"': false, '"abcd"': false },
  );
});

test("integer bounds are enforced digit by digit", () => {
  expectVerdicts(
    { type: "integer", minimum: -5, maximum: 123 },
    { "-5": true, "-6": false, "0": true, "99": true, "123": true, "124": false, "1000": false, "-0": false },
  );
  expectVerdicts({ type: "integer", exclusiveMinimum: 10 }, { "10": false, "11": true, "999999": true });
  expectVerdicts({ type: "integer", maximum: 0 }, { "0": true, "1": false, "-700": true });
});

test("number bounds allow fractions only inside the bounds", () => {
  expectVerdicts(
    { type: "number", minimum: 0, maximum: 1 },
    { "0": true, "0.5": true, "1": true, "1.5": false, "-0.1": false, "1e-3": false },
  );
  expectVerdicts(
    { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 },
    { "0": false, "0.25": true, "1": false },
  );
});

test("a fractional bound rounds inward for numbers and exactly for integers", () => {
  expectVerdicts({ type: "number", maximum: 2.5 }, { "2": true, "1.75": true, "2.5": false });
  expectVerdicts({ type: "integer", minimum: 1.5, maximum: 3.5 }, { "1": false, "2": true, "3": true, "4": false });
});

test("formats accept their shape and check calendar dates", () => {
  expectVerdicts(
    { type: "string", format: "date" },
    { '"2024-02-29"': true, '"2023-02-29"': false, '"2000-02-29"': true, '"1900-02-29"': false, '"2024-04-31"': false },
  );
  expectVerdicts(
    { type: "string", format: "date-time" },
    { '"2024-01-02T03:04:05Z"': true, '"2024-01-02T03:04:05.123+05:30"': true, '"2024-01-02T03:04:05"': false },
  );
  expectVerdicts({ format: "uuid" }, { '"123e4567-e89b-12d3-a456-426614174000"': true, '"123e4567"': false });
  expectVerdicts({ format: "ipv4" }, { '"192.168.0.1"': true, '"256.1.1.1"': false });
  expectVerdicts({ format: "email" }, { '"jane.doe@example.com"': true, '"jane@"': false });
});

test("a format and a pattern intersect exactly, as zod writes them", () => {
  const schema = { type: "string", format: "date", pattern: "^2024-0[1-3]" };
  expectVerdicts(schema, { '"2024-02-29"': true, '"2024-04-01"': false, '"2023-01-01"': false, '"2024-02-30"': false });
  expectVerdicts({ type: "string", format: "ipv4", maxLength: 9 }, { '"10.0.0.1"': true, '"10.0.0.100"': false });
});

test("enum values are checked against their sibling format", () => {
  expectVerdicts({ enum: ["2024-01-01", "yesterday"], format: "date" }, { '"2024-01-01"': true, '"yesterday"': false });
});

test("patterns are unanchored unless they say otherwise", () => {
  expectVerdicts({ type: "string", pattern: "^ab+$" }, { '"abb"': true, '"xab"': false, '"a"': false });
  expectVerdicts({ type: "string", pattern: "ab" }, { '"xxabyy"': true, '"ab"': true, '"ba"': false });
  expectVerdicts({ type: "string", pattern: "^a|b$" }, { '"ax"': true, '"xb"': true, '"xa"': false });
});

test("patterns translate classes, escapes and counted repetition", () => {
  expectVerdicts(
    { type: "string", pattern: "^[A-Z]{2}-\\d{3}(\\.\\w+)?$" },
    { '"AB-123"': true, '"AB-123.x_1"': true, '"AB-12"': false, '"ab-123"': false },
  );
  expectVerdicts({ type: "string", pattern: '^"\\\\$' }, { '"\\"\\\\"': true, '"x"': false });
  expectVerdicts({ type: "string", pattern: "^(a*)*b$" }, { '"aab"': true, '"b"': true, '"ba"': false });
});

test("a pattern with length bounds narrows its only variable part", () => {
  expectVerdicts(
    { type: "string", pattern: "^x[0-9]+$", maxLength: 3 },
    { '"x12"': true, '"x123"': false, '"x"': false },
  );
});

test("anyOf is an alternation and nullable types add null", () => {
  expectVerdicts(
    { anyOf: [{ type: "integer" }, { type: "string", maxLength: 1 }] },
    { "1": true, '"a"': true, '"ab"': false },
  );
  expectVerdicts({ type: "string", nullable: true }, { null: true, '"a"': true });
});

test("oneOf with disjoint branches is an alternation", () => {
  const schema = {
    oneOf: [
      { type: "object", properties: { kind: { const: "a" }, x: { type: "integer" } }, required: ["kind", "x"] },
      { type: "object", properties: { kind: { const: "b" } }, required: ["kind"] },
    ],
  };
  expectVerdicts(schema, { '{"kind":"a","x":1}': true, '{"kind":"b"}': true, '{"kind":"a"}': false });
});

test("oneOf over required sets leaves the other branches' properties out", () => {
  const schema = {
    type: "object",
    properties: { radius: { type: "number" }, width: { type: "number" } },
    oneOf: [{ required: ["radius"] }, { required: ["width"] }],
  };
  expectVerdicts(schema, { '{"radius":1}': true, '{"width":2}': true, '{"radius":1,"width":2}': false });
});

test("allOf merges objects, refs included", () => {
  const schema = {
    $defs: { named: { type: "object", properties: { name: { type: "string" } }, required: ["name"] } },
    allOf: [{ $ref: "#/$defs/named" }, { properties: { age: { type: "integer", minimum: 0 } }, required: ["age"] }],
  };
  expectVerdicts(schema, { '{"name":"x","age":3}': true, '{"name":"x"}': false, '{"name":"x","age":-1}': false });
});

test("recursive refs become recursive rules", () => {
  const schema = {
    definitions: {
      node: {
        type: "object",
        properties: { value: { type: "integer" }, children: { type: "array", items: { $ref: "#/definitions/node" } } },
        required: ["value"],
      },
    },
    $ref: "#/definitions/node",
  };
  expectVerdicts(schema, {
    '{"value":1,"children":[{"value":2,"children":[{"value":3}]}]}': true,
    '{"children":[]}': false,
  });
});

test("propertyNames constrains the keys of a map", () => {
  const schema = {
    type: "object",
    propertyNames: { pattern: "^[a-z]+$", maxLength: 3 },
    additionalProperties: { type: "integer" },
  };
  expectVerdicts(schema, { '{"ab":1,"xyz":2}': true, '{"abcd":1}': false, '{"A":1}': false });
});

test("dependentRequired makes dependencies required when the trigger can be present", () => {
  const schema = {
    type: "object",
    properties: { card: { type: "string" }, billing: { type: "string" } },
    dependencies: { card: ["billing"] },
  };
  expectVerdicts(schema, { '{"card":"1","billing":"x"}': true, '{"card":"1"}': false, '{"billing":"x"}': true });
});

test("whitespace between tokens is bounded", () => {
  const schema = { type: "array", items: { type: "integer" } };
  expectVerdicts(schema, { "[ 1,\n    2 ]": true, [`[${" ".repeat(2)}1]`]: false, [`[\n${" ".repeat(21)}1]`]: false });
});

test("regexToGbnf matches the whole output against the pattern", () => {
  const grammar = parseGbnf(regexToGbnf("^(yes|no)\\.$"));
  assert.equal(matchesGbnf(grammar, "yes."), true);
  assert.equal(matchesGbnf(grammar, "no"), false);
  assert.equal(matchesGbnf(grammar, "yes. "), false);
  assert.equal(matchesGbnf(parseGbnf(regexToGbnf('a"\\\\')), 'a"\\'), true);
});
