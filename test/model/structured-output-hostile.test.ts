/**
 * Hostile constraints against a listening pagoda on stories260K: recursive and self-referencing schemas, huge ones,
 * pathological GBNF. Each gets a 400 naming what was refused, or a response whose output is valid, within a bounded
 * time; afterwards the server still serves. The bound is generous (the test checks the server is not stuck, not how
 * fast it is): every case is refused by a limit checked before any work proportional to the input's blow-up.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { Ajv } from "ajv";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";

const CORPUS = path.resolve(import.meta.dirname, "../../../shared/schemas/jsonschemabench");
const BOUND_MS = 10_000;

let server: ModelServer;

before(async () => {
  server = await startModelServer(["--parallel", "2", "--ctx-size", "512"]);
});

after(async () => {
  await server.close();
});

interface Outcome {
  readonly status: number;
  readonly body: {
    error?: { message: string; code: string | null; param: string | null };
    choices?: { text: string; finish_reason: string }[];
  };
}

/** `rawFields`: JSON text of more fields, for values too deep for JSON.stringify. */
async function complete(fields: Record<string, unknown>, rawFields = ""): Promise<Outcome> {
  const body = JSON.stringify({
    model: STORIES_ID,
    prompt: "Once upon a time",
    max_tokens: 64,
    temperature: 0,
    ...fields,
  });
  const response = await fetch(`${server.baseUrl}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: rawFields === "" ? body : `${body.slice(0, -1)},${rawFields}}`,
    signal: AbortSignal.timeout(BOUND_MS),
  });
  return { status: response.status, body: (await response.json()) as Outcome["body"] };
}

/** A 400 naming the field, or a completion whose finished output satisfies `schema`. */
function assertRefusedOrValid(outcome: Outcome, param: string, schema: unknown | null): void {
  if (outcome.status === 400) {
    assert.equal(outcome.body.error?.param, param, JSON.stringify(outcome.body));
    assert.equal(outcome.body.error?.code, "invalid_constraint");
    return;
  }
  assert.equal(outcome.status, 200, JSON.stringify(outcome.body));
  const choice = outcome.body.choices?.[0];
  assert.ok(choice !== undefined);
  if (choice.finish_reason === "stop" && schema !== null) {
    const validate = new Ajv({ strict: false, validateSchema: false }).compile(schema as object);
    assert.ok(validate(JSON.parse(choice.text)), choice.text);
  }
}

async function assertAlive(): Promise<void> {
  assert.equal((await fetch(`${server.baseUrl}/health`)).status, 200);
  const outcome = await complete({ max_tokens: 4 });
  assert.equal(outcome.status, 200);
}

function hugeProperties(count: number): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (let index = 0; index < count; index++) properties[`p${index}`] = { type: "integer" };
  return { type: "object", properties, required: Object.keys(properties) };
}

/** JSON text of objects nested `depth` deep (text, since JSON.stringify recurses). */
function nestedText(depth: number): string {
  const open = '{"type":"object","properties":{"x":';
  const close = '},"required":["x"],"additionalProperties":false}';
  return `${open.repeat(depth)}{"type":"string","maxLength":3}${close.repeat(depth)}`;
}

const HOSTILE_SCHEMAS: { readonly what: string; readonly schema: unknown }[] = [
  { what: "a schema that is only a reference to itself", schema: { $ref: "#" } },
  {
    what: "two definitions referring to each other without consuming input",
    schema: { $ref: "#/$defs/a", $defs: { a: { $ref: "#/$defs/b" }, b: { anyOf: [{ $ref: "#/$defs/a" }] } } },
  },
  { what: "20,000 required properties", schema: hugeProperties(20_000) },
  {
    what: "an array of at least 100,000 items",
    schema: { type: "array", items: { type: "integer" }, minItems: 100_000 },
  },
  { what: "a string of at most a billion characters", schema: { type: "string", maxLength: 1e9 } },
  { what: "objects nested 40 deep", schema: JSON.parse(nestedText(40)) },
  { what: "a reference to a missing definition", schema: { $ref: "#/definitions/missing" } },
];

for (const { what, schema } of HOSTILE_SCHEMAS) {
  test(`${what}: a 400 naming the schema, or valid output, in bounded time`, async () => {
    assertRefusedOrValid(await complete({ json_schema: schema }), "json_schema", schema);
    await assertAlive();
  });
}

test("objects nested 10,000 deep: a 400 naming the schema, in bounded time", async () => {
  const outcome = await complete({}, `"json_schema":${nestedText(10_000)}`);
  assertRefusedOrValid(outcome, "json_schema", null);
  assert.equal(outcome.status, 400);
  await assertAlive();
});

test("an enum value nested 20,000 deep: a 400 naming the schema, in bounded time", async () => {
  const value = `${"[".repeat(20_000)}1${"]".repeat(20_000)}`;
  const outcome = await complete({}, `"json_schema":{"enum":[${value}]}`);
  assertRefusedOrValid(outcome, "json_schema", null);
  assert.equal(outcome.status, 400);
  await assertAlive();
});

test("JSONSchemaBench's recursive allOf/$ref schema that crashes llama.cpp's converter is served or refused", async (t) => {
  const file = path.join(CORPUS, "Github_medium/o13135.json");
  if (!existsSync(file)) {
    t.skip(`${file} is missing: the corpus lives beside the repository`);
    return;
  }
  const schema: unknown = JSON.parse(readFileSync(file, "utf8"));
  assertRefusedOrValid(
    await complete({ response_format: { type: "json_schema", json_schema: { name: "o13135", schema } } }),
    "response_format.json_schema.schema",
    schema,
  );
  await assertAlive();
});

const HOSTILE_GRAMMARS: { readonly what: string; readonly grammar: string }[] = [
  { what: "left recursion", grammar: 'root ::= root "a" | "a"' },
  { what: "indirect left recursion through a nullable prefix", grammar: 'root ::= x root "a" | "b"\nx ::= "c"?' },
  { what: "a repetition of something that can be empty", grammar: 'root ::= ("a"?)*' },
  { what: "an undefined rule", grammar: "root ::= missing" },
  { what: "an unterminated literal", grammar: 'root ::= "abc' },
  { what: "a million opening parentheses", grammar: `root ::= ${"(".repeat(1_000_000)}"a"` },
  {
    what: "100,000 alternatives",
    grammar: `root ::= ${Array.from({ length: 100_000 }, (_, i) => `"${i}"`).join(" | ")}`,
  },
  { what: "a repetition bound of ten million", grammar: 'root ::= "a"{10000000}' },
  { what: "a token reference", grammar: "root ::= <[42]>" },
  { what: "no root rule", grammar: 'start ::= "a"' },
];

for (const { what, grammar } of HOSTILE_GRAMMARS) {
  test(`GBNF with ${what}: a 400 naming the grammar, in bounded time`, async () => {
    const outcome = await complete({ grammar });
    assert.equal(outcome.status, 400, JSON.stringify(outcome.body).slice(0, 300));
    assert.equal(outcome.body.error?.param, "grammar");
    assert.equal(outcome.body.error?.code, "invalid_constraint");
    await assertAlive();
  });
}
