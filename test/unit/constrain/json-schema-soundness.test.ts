import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { checkSchema } from "../../helpers/schema-soundness.ts";

const SAMPLES = 40;

/** Every sample from the schema's grammar parses and validates under ajv. */
function assertSound(schema: unknown, label: string): void {
  const check = checkSchema(schema, { samples: SAMPLES, seed: 42 });
  if (check.outcome !== "converted") assert.fail(`${label}: ${String(check.error)}`);
  assert.equal(check.isValidated, true, `${label}: ajv could not compile the schema`);
  assert.deepEqual(check.invalid, [], label);
  assert.ok(check.numUnfinished < SAMPLES / 2, `${label}: most samples did not finish`);
}

const SCHEMAS: Record<string, unknown> = {
  "bounded integers": { type: "integer", minimum: -1234, maximum: 98765 },
  "integers above a bound": { type: "integer", exclusiveMinimum: 99 },
  "negative integers": { type: "integer", maximum: -10 },
  "numbers in [0, 1]": { type: "number", minimum: 0, maximum: 1 },
  "numbers in (-2, 3)": { type: "number", exclusiveMinimum: -2, exclusiveMaximum: 3 },
  "numbers at most -0.5": { type: "number", maximum: -0.5 },
  "large exclusive bounds": { type: "number", exclusiveMinimum: 1e12, exclusiveMaximum: 1e12 + 2 },
  "any number": { type: "number" },
  int32: { type: "integer", format: "int32" },
  "short strings": { type: "string", minLength: 1, maxLength: 4 },
  "patterned strings": { type: "string", pattern: "^[a-z]+(-[a-z0-9]+)*@\\d{2,3}$" },
  "unanchored pattern": { type: "string", pattern: "ab?c" },
  "pattern with escapes": { type: "string", pattern: '^["\\\\/\\t\\n\\u00e9\\u{1F600}]{1,5}$' },
  "pattern with negated class": { type: "string", pattern: "^[^a-z]{3}$" },
  "pattern with dot": { type: "string", pattern: "^.{2}x$" },
  "format and pattern": { type: "string", format: "date", pattern: "^20[0-9]{2}-0[1-6]" },
  "format and length": { type: "string", format: "email", maxLength: 12 },
  "pattern and length beyond narrowing": { type: "string", pattern: "^( )*(-|\\+)?[0-9]*(\\.[0-9]+)?$", maxLength: 6 },
  "pattern and length": { type: "string", pattern: "^id-[0-9]*$", minLength: 5, maxLength: 8 },
  formats: {
    type: "object",
    properties: Object.fromEntries(
      [
        "date",
        "time",
        "date-time",
        "uuid",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "uri",
        "uri-reference",
        "duration",
        "byte",
      ].map((format) => [format, { type: "string", format }]),
    ),
    required: [
      "date",
      "time",
      "date-time",
      "uuid",
      "email",
      "hostname",
      "ipv4",
      "ipv6",
      "uri",
      "uri-reference",
      "duration",
      "byte",
    ],
  },
  "enums of mixed values": { enum: ["a", 1, 2.5, true, null, { k: [1, "x"] }, ["y"]] },
  "object with optional properties": {
    type: "object",
    properties: { a: { type: "integer" }, b: { type: "string" }, c: { type: "boolean" }, d: { type: "null" } },
    required: ["c"],
    additionalProperties: false,
  },
  "map with declared keys": {
    type: "object",
    properties: { id: { type: "integer" }, idx: { type: "string" } },
    additionalProperties: { type: "boolean" },
  },
  "pattern properties": {
    type: "object",
    patternProperties: { "^x-[a-z]+$": { type: "integer" } },
    additionalProperties: false,
  },
  tuples: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "array",
    prefixItems: [{ type: "string" }, { type: "integer" }],
    items: { type: "boolean" },
    minItems: 1,
    maxItems: 4,
  },
  "draft-07 tuples": { type: "array", items: [{ const: 1 }, { const: 2 }], additionalItems: false },
  "bounded arrays": { type: "array", items: { type: "integer", minimum: 0, maximum: 9 }, minItems: 2, maxItems: 5 },
  nullable: { type: "object", properties: { a: { type: "string", nullable: true } }, required: ["a"] },
  anyOf: { anyOf: [{ type: "string", maxLength: 2 }, { type: "array", items: { type: "null" } }, { type: "integer" }] },
  "oneOf by type": { oneOf: [{ type: "string" }, { type: "integer" }, { type: "null" }] },
  "oneOf by discriminator": {
    oneOf: [
      { type: "object", properties: { t: { const: "a" }, v: { type: "string" } }, required: ["t", "v"] },
      { type: "object", properties: { t: { enum: ["b", "c"] }, v: { type: "integer" } }, required: ["t"] },
    ],
  },
  "oneOf by required sets": {
    type: "object",
    properties: { radius: { type: "number" }, length: { type: "number" }, width: { type: "number" } },
    oneOf: [{ required: ["radius"] }, { required: ["length", "width"] }],
  },
  "allOf with refs": {
    definitions: {
      base: {
        type: "object",
        properties: { id: { type: "integer", minimum: 1 } },
        required: ["id"],
        additionalProperties: { type: "string" },
      },
    },
    allOf: [
      { $ref: "#/definitions/base" },
      { properties: { name: { type: "string", minLength: 1 } }, required: ["name"] },
    ],
  },
  "recursive tree": {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $defs: {
      tree: {
        type: "object",
        properties: { v: { type: "integer" }, kids: { type: "array", items: { $ref: "#/$defs/tree" }, maxItems: 2 } },
        required: ["v"],
        additionalProperties: false,
      },
    },
    $ref: "#/$defs/tree",
  },
  "recursive with siblings": {
    definitions: {
      node: { type: "object", properties: { next: { anyOf: [{ $ref: "#/definitions/node" }, { type: "null" }] } } },
    },
    type: "object",
    properties: { head: { allOf: [{ $ref: "#/definitions/node" }], required: ["next"] } },
  },
  dependencies: {
    type: "object",
    properties: { card: { type: "string" }, billing: { type: "string" }, zip: { type: "string" } },
    dependencies: { card: ["billing"], billing: ["zip"] },
  },
  "draft-04 exclusive bounds": {
    $schema: "http://json-schema.org/draft-04/schema#",
    type: "number",
    minimum: 0,
    exclusiveMinimum: true,
    maximum: 10,
  },
};

for (const [label, schema] of Object.entries(SCHEMAS)) {
  test(`every sample for ${label} validates`, () => assertSound(schema, label));
}

test("zod schemas convert and every sample validates", () => {
  const Address = z.object({ street: z.string().min(1), zip: z.string().regex(/^\d{5}$/) });
  const schemas = {
    user: z.object({
      name: z.string().max(40),
      age: z.number().int().min(0).max(150).optional(),
      role: z.enum(["admin", "user"]),
      address: Address.nullable(),
      tags: z.array(z.string()).max(5),
      score: z.number().gt(0).lte(100),
    }),
    union: z.union([z.string(), z.number(), z.null()]),
    discriminated: z.discriminatedUnion("type", [
      z.object({ type: z.literal("circle"), radius: z.number().positive() }),
      z.object({ type: z.literal("square"), side: z.number().positive() }),
    ]),
    record: z.record(z.string(), z.boolean()),
    formats: z.object({
      email: z.email(),
      when: z.iso.datetime(),
      day: z.iso.date(),
      id: z.uuid(),
      site: z.url().optional(),
      short: z
        .string()
        .min(2)
        .max(8)
        .regex(/^[a-z]+$/),
    }),
    tuple: z.tuple([z.string(), z.number().int()]),
    shared: z.object({ home: Address, work: Address.optional() }),
  };
  for (const [label, schema] of Object.entries(schemas)) assertSound(z.toJSONSchema(schema), `zod ${label}`);
});

test("zod recursive schemas with $defs convert and validate", () => {
  interface Category {
    name: string;
    children: Category[];
  }
  const Category: z.ZodType<Category> = z.object({
    name: z.string(),
    get children() {
      return z.array(Category).max(2);
    },
  });
  assertSound(z.toJSONSchema(z.object({ root: Category })), "zod recursive");
});
