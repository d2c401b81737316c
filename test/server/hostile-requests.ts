/**
 * fast-check arbitraries for malformed and hostile requests to the JSON routes: wrong types, huge and non-finite
 * numbers, negative values, deep nesting, invalid UTF-8, enormous strings, unknown fields, broken JSON, wrong
 * content types and prototype-pollution keys. Each request is plain data, so it can go through `inject` or a socket.
 */
import fc from "fast-check";
import { FAKE_MODEL_ID } from "../helpers/fake-server.ts";

export const FUZZ_ROUTES = ["/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/tokenize"] as const;
export type FuzzRoute = (typeof FUZZ_ROUTES)[number];

export interface HostileRequest {
  readonly url: FuzzRoute;
  /** Absent: no content-type header at all. */
  readonly contentType: string | undefined;
  readonly payload: Buffer;
  /** For the failure report: what kind of body this is. */
  readonly kind: string;
}

/** Valid bodies that the mutations start from, so most requests get past the first check and exercise the next. */
const BASE_BODIES: Readonly<Record<FuzzRoute, Record<string, unknown>>> = {
  "/v1/completions": { model: FAKE_MODEL_ID, prompt: "Hi", max_tokens: 2 },
  "/v1/chat/completions": { model: FAKE_MODEL_ID, messages: [{ role: "user", content: "Hi" }], max_tokens: 2 },
  "/v1/embeddings": { model: FAKE_MODEL_ID, input: "Hi" },
  "/tokenize": { model: FAKE_MODEL_ID, prompt: "Hi" },
};

const FIELDS = [
  "model",
  "prompt",
  "messages",
  "input",
  "content",
  "max_tokens",
  "max_completion_tokens",
  "n",
  "stop",
  "stream",
  "stream_options",
  "temperature",
  "top_p",
  "top_k",
  "min_p",
  "seed",
  "logprobs",
  "top_logprobs",
  "echo",
  "best_of",
  "suffix",
  "logit_bias",
  "presence_penalty",
  "frequency_penalty",
  "ignore_eos",
  "encoding_format",
  "dimensions",
  "add_special",
  "add_special_tokens",
  "tools",
  "response_format",
  "user",
];
const POLLUTION_KEYS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf"];

const hostileNumber = fc.oneof(
  fc.constantFrom(
    -1,
    0,
    -0,
    0.5,
    1.5,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
    1e-300,
  ),
  fc.integer({ min: -1_000_000, max: 1_000_000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

const hostileString = fc.oneof(
  fc.constantFrom(
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "0x10",
    "",
    " ",
    "null",
    "true",
    "[]",
    "{}",
    "\u0000",
    "\ud800",
    "\udfff",
    "💥".repeat(50),
  ),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom(...POLLUTION_KEYS, FAKE_MODEL_ID, "user", "system", "assistant", "float", "base64"),
);

const hostileKey = fc.oneof(fc.constantFrom(...FIELDS, ...POLLUTION_KEYS), fc.string({ maxLength: 12 }));

const { value: hostileValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    hostileNumber,
    hostileString,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(hostileKey, tie("value"), { maxKeys: 4 }),
  ),
}));

/** A valid body with some fields replaced by hostile values and some unknown or pollution keys added. */
function mutatedBody(url: FuzzRoute): fc.Arbitrary<unknown> {
  return fc
    .tuple(
      fc.dictionary(hostileKey, hostileValue, { minKeys: 1, maxKeys: 5 }),
      fc.subarray(Object.keys(BASE_BODIES[url])),
    )
    .map(([overrides, dropped]) => {
      const body: Record<string, unknown> = { ...BASE_BODIES[url] };
      for (const key of dropped) delete body[key];
      // defineProperty, so "__proto__" becomes an own key that JSON.stringify writes, as an attacker would send it.
      for (const [key, value] of Object.entries(overrides))
        Object.defineProperty(body, key, { value, enumerable: true, configurable: true, writable: true });
      return body;
    });
}

function nested(depth: number, open: string, close: string, inner: string): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

/** Bodies no JSON generator produces: broken syntax, bad bytes, extreme sizes and nesting. */
const rawBodies: fc.Arbitrary<{ kind: string; payload: Buffer }> = fc.oneof(
  fc.constantFrom(
    { kind: "truncated JSON", payload: Buffer.from('{"model": "fake-model", "prompt": ') },
    { kind: "trailing garbage", payload: Buffer.from('{"model": "fake-model", "prompt": "x"} xyz') },
    { kind: "single quotes", payload: Buffer.from("{'model': 'fake-model'}") },
    { kind: "NaN literal", payload: Buffer.from('{"model": "fake-model", "prompt": "x", "max_tokens": NaN}') },
    {
      kind: "Infinity literal",
      payload: Buffer.from('{"model": "fake-model", "prompt": "x", "temperature": Infinity}'),
    },
    {
      kind: "overflowing number",
      payload: Buffer.from('{"model": "fake-model", "prompt": "x", "max_tokens": 1e999999}'),
    },
    { kind: "huge integer", payload: Buffer.from(`{"model": "fake-model", "prompt": "x", "n": ${"9".repeat(400)}}`) },
    {
      kind: "__proto__ key",
      payload: Buffer.from('{"model": "fake-model", "prompt": "x", "__proto__": {"polluted": true}}'),
    },
    {
      kind: "constructor.prototype",
      payload: Buffer.from('{"model": "fake-model", "prompt": "x", "constructor": {"prototype": {"polluted": true}}}'),
    },
    {
      kind: "nested __proto__",
      payload: Buffer.from(
        '{"model": "fake-model", "messages": [{"role": "user", "content": "x", "__proto__": {"polluted": 1}}]}',
      ),
    },
    { kind: "duplicate keys", payload: Buffer.from('{"model": "fake-model", "model": 5, "prompt": "x"}') },
    {
      kind: "BOM",
      payload: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model": "fake-model", "prompt": "x"}')]),
    },
    {
      kind: "invalid UTF-8",
      payload: Buffer.concat([
        Buffer.from('{"model": "fake-model", "prompt": "'),
        Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xed, 0xa0, 0x80]),
        Buffer.from('"}'),
      ]),
    },
    { kind: "NUL bytes", payload: Buffer.from('{"model": "fake-model",\u0000 "prompt": "x"}') },
    {
      kind: "lone surrogate escapes",
      payload: Buffer.from('{"model": "fake-model", "prompt": "\\ud800\\udc00\\udfff\\ud800"}'),
    },
    { kind: "empty", payload: Buffer.alloc(0) },
    { kind: "whitespace", payload: Buffer.from(" \n\t ") },
    { kind: "null", payload: Buffer.from("null") },
    { kind: "number", payload: Buffer.from("42") },
    { kind: "string", payload: Buffer.from('"prompt"') },
    {
      kind: "deeply nested arrays",
      payload: Buffer.from(`{"model": "fake-model", "prompt": ${nested(50_000, "[", "]", "1")}}`),
    },
    {
      kind: "deeply nested objects",
      payload: Buffer.from(`{"model": "fake-model", "prompt": "x", "extra": ${nested(20_000, '{"a":', "}", "1")}}`),
    },
    {
      kind: "deep message content",
      payload: Buffer.from(
        `{"model": "fake-model", "messages": [{"role": "user", "content": ${nested(20_000, "[", "]", '{"type":"text","text":"x"}')}}]}`,
      ),
    },
    {
      kind: "enormous prompt",
      payload: Buffer.from(
        JSON.stringify({ model: FAKE_MODEL_ID, prompt: "x".repeat(4_000_000), input: "y".repeat(100_000) }),
      ),
    },
    {
      kind: "over the body limit",
      payload: Buffer.from(JSON.stringify({ model: FAKE_MODEL_ID, prompt: "x".repeat(9 * 1024 * 1024) })),
    },
    {
      kind: "many stop strings",
      payload: Buffer.from(
        JSON.stringify({
          model: FAKE_MODEL_ID,
          prompt: "x",
          messages: [{ role: "user", content: "x" }],
          stop: Array.from({ length: 100_000 }, () => "s"),
        }),
      ),
    },
    {
      kind: "huge token array",
      payload: Buffer.from(
        JSON.stringify({
          model: FAKE_MODEL_ID,
          prompt: Array.from({ length: 200_000 }, (_, i) => i % 90),
          input: [1, 2],
        }),
      ),
    },
    {
      kind: "many prompts",
      payload: Buffer.from(
        JSON.stringify({
          model: FAKE_MODEL_ID,
          prompt: Array.from({ length: 5000 }, () => "ab"),
          input: Array.from({ length: 5000 }, () => "ab"),
          n: 16,
        }),
      ),
    },
  ),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ kind: "random bytes", payload: Buffer.from(bytes) })),
  fc.string({ unit: "binary", maxLength: 200 }).map((text) => ({ kind: "random text", payload: Buffer.from(text) })),
);

const contentTypes = fc.oneof(
  { weight: 8, arbitrary: fc.constant("application/json") },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      undefined,
      "application/json; charset=utf-8",
      "application/json; charset=utf-16",
      "APPLICATION/JSON",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/xml",
      "application/jsonx",
      "",
      "application/json, text/plain",
      "*/*",
    ),
  },
);

/** One hostile request to one of the JSON routes. */
export const hostileRequest: fc.Arbitrary<HostileRequest> = fc
  .tuple(
    fc.constantFrom(...FUZZ_ROUTES),
    contentTypes,
    fc.oneof(
      { weight: 3, arbitrary: fc.constant<"mutated">("mutated") },
      { weight: 1, arbitrary: fc.constant<"raw">("raw") },
      { weight: 1, arbitrary: fc.constant<"any">("any") },
    ),
  )
  .chain(([url, contentType, shape]) => {
    const body: fc.Arbitrary<{ kind: string; payload: Buffer }> =
      shape === "raw"
        ? rawBodies
        : (shape === "mutated" ? mutatedBody(url) : hostileValue).map((value) => ({
            kind: `${shape} JSON`,
            payload: Buffer.from(JSON.stringify(value) ?? "null"),
          }));
    return body.map(({ kind, payload }) => ({ url, contentType, payload, kind }));
  });

/** A short description for failure messages; bodies can be megabytes. */
export function describeRequest(request: HostileRequest): string {
  const preview = request.payload.subarray(0, 300).toString("latin1");
  return `${request.kind} to ${request.url} as ${JSON.stringify(request.contentType)} (${request.payload.length} bytes): ${JSON.stringify(preview)}`;
}
