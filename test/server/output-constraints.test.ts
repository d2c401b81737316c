/**
 * Output constraints through the HTTP layer on the fake engine: which fields are read, what reaches the engine,
 * and every refusal as a 400 naming the field. The grammars' effect on real output is tested on stories260K
 * (test/model/structured-output*.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { formatGbnf, parseGbnf } from "../../src/constrain/gbnf/index.ts";
import { JSON_OBJECT_GBNF } from "../../src/constrain/json-schema/index.ts";
import type { FakeEngine } from "../../src/engine/fake-engine.ts";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, okJson, postJson } from "./support.ts";

const MODEL = FAKE_MODEL_ID;
const CHAT = { model: MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 2 };
const COMPLETION = { model: MODEL, prompt: "x", max_tokens: 2 };
const ROUTES = [
  ["/v1/chat/completions", CHAT],
  ["/v1/completions", COMPLETION],
] as const;

let app: FastifyInstance;
let engine: FakeEngine;

before(async () => {
  ({ app, engine } = await startFakeServer());
});

after(async () => {
  await app.close();
});

test("logit_bias reaches the engine as token ids with their biases, zeros dropped", async () => {
  for (const [url, body] of ROUTES) {
    const before = engine.acquiredSamplings.length;
    okJson(await postJson(app, url, { ...body, logit_bias: { "50": 5, "7": -100, "9": 0 } }));
    const sampling = engine.acquiredSamplings[before];
    // JSON objects list integer keys in ascending order.
    assert.deepEqual(
      [...(sampling?.logitBias ?? new Map())],
      [
        [7, -100],
        [50, 5],
      ],
    );
  }
});

test("logit_bias keys outside the vocabulary, non-numeric keys and biases beyond ±100 are 400s", async () => {
  for (const logitBias of [{ "5000": 1 }, { abc: 1 }, { "-1": 1 }, { "5": 101 }, { "5": -100.5 }]) {
    for (const [url, body] of ROUTES) {
      assertError(await postJson(app, url, { ...body, logit_bias: logitBias }), {
        status: 400,
        type: "invalid_request_error",
        code: null,
        param: "logit_bias",
      });
    }
  }
});

test("every spelling of a JSON object constraint gives the engine pagoda's JSON-object grammar", async () => {
  const expected = formatGbnf(parseGbnf(JSON_OBJECT_GBNF));
  const spellings = [{ response_format: { type: "json_object" } }, { structured_outputs: { json_object: true } }];
  for (const spelling of spellings) {
    for (const [url, body] of ROUTES) {
      const before = engine.acquiredSamplings.length;
      okJson(await postJson(app, url, { ...body, ...spelling }));
      assert.equal(engine.acquiredSamplings[before]?.grammar?.gbnf, expected, JSON.stringify(spelling));
    }
  }
});

test("a JSON schema from response_format, json_schema or structured_outputs.json reaches the engine as one grammar", async () => {
  const schema = { type: "object", properties: { name: { type: "string", maxLength: 5 } }, required: ["name"] };
  const grammars = new Set<string>();
  for (const spelling of [
    { response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } } },
    { response_format: { type: "json_object", schema } },
    { json_schema: schema },
    { structured_outputs: { json: schema } },
    { structured_outputs: { json: JSON.stringify(schema) } },
  ]) {
    const before = engine.acquiredSamplings.length;
    okJson(await postJson(app, "/v1/completions", { ...COMPLETION, ...spelling }));
    const gbnf = engine.acquiredSamplings[before]?.grammar?.gbnf;
    assert.ok(gbnf !== undefined, JSON.stringify(spelling));
    grammars.add(gbnf);
  }
  assert.equal(grammars.size, 1);
});

test("a schema keyword pagoda cannot enforce is a 400 naming the keyword and where it is", async () => {
  const schema = { type: "object", properties: { tag: { type: "string", not: { const: "x" } } }, required: ["tag"] };
  const error = assertError(
    await postJson(app, "/v1/chat/completions", {
      ...CHAT,
      response_format: { type: "json_schema", json_schema: { name: "t", schema } },
    }),
    {
      status: 400,
      type: "invalid_request_error",
      code: "invalid_constraint",
      param: "response_format.json_schema.schema",
    },
  );
  assert.match(error.message, /"not"/);
  assert.match(error.message, /\/properties\/tag/);
});

test("malformed GBNF is a 400 naming the line and column, before anything reaches the engine", async () => {
  const before = engine.preparedGrammars.length;
  const error = assertError(await postJson(app, "/v1/completions", { ...COMPLETION, grammar: 'root ::= "a" | (' }), {
    status: 400,
    type: "invalid_request_error",
    code: "invalid_constraint",
    param: "grammar",
  });
  assert.match(error.message, /line 1/);
  assert.equal(engine.preparedGrammars.length, before);
});

test("a choice and a regex constrain the output to exactly those strings", async () => {
  for (const [spelling, accepted, refused] of [
    [{ structured_outputs: { choice: ["yes", "no"] } }, ["yes", "no"], ["maybe", "yesno"]],
    [{ structured_outputs: { regex: "[a-c]{2}" } }, ["ab", "cc"], ["a", "abc", "ad"]],
  ] as const) {
    const before = engine.acquiredSamplings.length;
    okJson(await postJson(app, "/v1/completions", { ...COMPLETION, ...spelling }));
    const grammar = parseGbnf(engine.acquiredSamplings[before]?.grammar?.gbnf ?? "");
    const { matchesGbnf } = await import("../../src/constrain/gbnf/index.ts");
    for (const text of accepted) assert.equal(matchesGbnf(grammar, text), true, text);
    for (const text of refused) assert.equal(matchesGbnf(grammar, text), false, text);
  }
});

test("two constraints in one request are a 400 naming both", async () => {
  const error = assertError(
    await postJson(app, "/v1/completions", {
      ...COMPLETION,
      response_format: { type: "json_object" },
      grammar: 'root ::= "a"',
    }),
    { status: 400, type: "invalid_request_error", code: null, param: "grammar" },
  );
  assert.match(error.message, /response_format.*grammar/);
});

test("stop strings and ignore_eos cannot be combined with a constraint, since the grammar decides where output ends", async () => {
  for (const [field, value] of [
    ["stop", ["}"]],
    ["stop", "x"],
    ["ignore_eos", true],
  ] as const) {
    assertError(await postJson(app, "/v1/completions", { ...COMPLETION, grammar: 'root ::= "a"', [field]: value }), {
      status: 400,
      type: "invalid_request_error",
      code: null,
      param: field,
    });
  }
  okJson(await postJson(app, "/v1/completions", { ...COMPLETION, grammar: 'root ::= "a"', stop: [] }));
});

test("a request without a model is served by the model this server serves; an unknown one is still a 404", async () => {
  const { model: _model, ...withoutModel } = CHAT;
  okJson(await postJson(app, "/v1/chat/completions", withoutModel));
  assertError(await postJson(app, "/v1/chat/completions", { ...CHAT, model: "other" }), {
    status: 404,
    type: "invalid_request_error",
    code: "model_not_found",
    param: "model",
  });
});

test("a repeated schema is compiled once and every constrained request is counted by kind", async () => {
  const schema = { type: "object", properties: { n: { type: "integer", minimum: 0, maximum: 9 } }, required: ["n"] };
  for (let i = 0; i < 3; i++) okJson(await postJson(app, "/v1/completions", { ...COMPLETION, json_schema: schema }));
  const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
  const count = (name: string): number => Number(metrics.match(new RegExp(`^${name} (\\d+)`, "m"))?.[1] ?? Number.NaN);
  assert.ok(count('pagoda_constrained_requests_total\\{kind="json_schema"\\}') >= 3);
  const schemaCompiles = count('pagoda_grammar_compile_seconds_count\\{kind="json_schema"\\}');
  // Earlier tests compiled other schemas; these three added one compile.
  const again = { ...schema, title: "again" };
  okJson(await postJson(app, "/v1/completions", { ...COMPLETION, json_schema: again }));
  okJson(await postJson(app, "/v1/completions", { ...COMPLETION, json_schema: again }));
  const after = (await app.inject({ method: "GET", url: "/metrics" })).body;
  const countAfter = Number(
    after.match(/^pagoda_grammar_compile_seconds_count\{kind="json_schema"\} (\d+)/m)?.[1] ?? Number.NaN,
  );
  assert.equal(countAfter, schemaCompiles + 1);
});
