import assert from "node:assert/strict";
import { test } from "node:test";
import { FAKE_MODEL_ID, type FakeServer, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, okJson, postJson } from "./support.ts";

const KEYS = ["sk-first-key", "sk-second-key"];
const COMPLETION = { model: FAKE_MODEL_ID, prompt: "Hi", max_tokens: 2, temperature: 0 };

async function startWithKeys(
  t: { after: (fn: () => Promise<void>) => void },
  options: { isMetricsAuthRequired?: boolean; corsOrigins?: string[] } = {},
): Promise<FakeServer> {
  const server = await startFakeServer({}, { apiKeys: KEYS, ...options });
  t.after(() => server.app.close());
  return server;
}

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

test("a request without an API key is a 401 in OpenAI's words with WWW-Authenticate: Bearer", async (t) => {
  const { app } = await startWithKeys(t);
  const response = await postJson(app, "/v1/completions", COMPLETION);
  const error = assertError(response, { status: 401, type: "invalid_request_error", code: null, param: null });
  assert.match(error.message, /^You didn't provide an API key/);
  assert.equal(response.headers["www-authenticate"], "Bearer");
});

test("a wrong key, another scheme or an empty bearer token is refused", async (t) => {
  const { app } = await startWithKeys(t);
  const wrong = await postJson(app, "/v1/completions", COMPLETION, bearer("sk-first-kex"));
  const error = assertError(wrong, {
    status: 401,
    type: "invalid_request_error",
    code: "invalid_api_key",
    param: null,
  });
  assert.equal(error.message, "Incorrect API key provided.");
  assert.equal(wrong.headers["www-authenticate"], "Bearer");
  for (const authorization of ["Basic c2stZmlyc3Qta2V5", "Bearer", "Bearer   ", "sk-first-key"]) {
    assertError(await postJson(app, "/v1/completions", COMPLETION, { authorization }), {
      status: 401,
      type: "invalid_request_error",
      code: null,
    });
  }
  // A prefix of a valid key must not pass.
  assertError(await postJson(app, "/v1/completions", COMPLETION, bearer("sk-first")), {
    status: 401,
    type: "invalid_request_error",
    code: "invalid_api_key",
  });
});

test("every configured key is accepted, with the scheme in any case", async (t) => {
  const { app } = await startWithKeys(t);
  okJson(await postJson(app, "/v1/completions", COMPLETION, bearer(KEYS[0] as string)));
  okJson(await postJson(app, "/v1/completions", COMPLETION, { authorization: `bearer ${KEYS[1]}` }));
  okJson(await app.inject({ method: "GET", url: "/v1/models", headers: bearer(KEYS[1] as string) }));
});

test("every API route requires the key, and so do unknown routes, so probing cannot map the API", async (t) => {
  const { app } = await startWithKeys(t);
  for (const [method, url] of [
    ["GET", "/v1/models"],
    ["GET", `/v1/models/${FAKE_MODEL_ID}`],
    ["POST", "/v1/chat/completions"],
    ["POST", "/v1/embeddings"],
    ["POST", "/tokenize"],
    ["POST", "/detokenize"],
    ["GET", "/v1/plan"],
    ["GET", "/v1/nothing-here"],
  ] as const) {
    const response = await app.inject({
      method,
      url,
      headers: { "content-type": "application/json" },
      payload: method === "POST" ? "{}" : undefined,
    });
    assert.equal(response.statusCode, 401, `${method} ${url}: ${response.body}`);
  }
});

test("/health, /livez and /metrics stay public by default", async (t) => {
  const { app } = await startWithKeys(t);
  assert.equal((await app.inject({ method: "GET", url: "/health" })).statusCode, 200);
  assert.equal((await app.inject({ method: "GET", url: "/livez" })).statusCode, 200);
  const metrics = await app.inject({ method: "GET", url: "/metrics" });
  assert.equal(metrics.statusCode, 200);
});

test("with metrics auth /metrics needs a key while /health and /livez stay public", async (t) => {
  const { app } = await startWithKeys(t, { isMetricsAuthRequired: true });
  assertError(await app.inject({ method: "GET", url: "/metrics" }), {
    status: 401,
    type: "invalid_request_error",
    code: null,
  });
  assert.equal(
    (await app.inject({ method: "GET", url: "/metrics", headers: bearer(KEYS[0] as string) })).statusCode,
    200,
  );
  assert.equal((await app.inject({ method: "GET", url: "/health" })).statusCode, 200);
  assert.equal((await app.inject({ method: "GET", url: "/livez" })).statusCode, 200);
});

test("refused keys are counted as unauthorized rejections", async (t) => {
  const { app } = await startWithKeys(t);
  await postJson(app, "/v1/completions", COMPLETION);
  await postJson(app, "/v1/completions", COMPLETION, bearer("nope"));
  const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
  assert.match(metrics, /^pagoda_requests_rejected_total\{reason="unauthorized"\} 2$/m);
  assert.match(metrics, /^pagoda_http_responses_total\{code="401"\} 2$/m);
});

test("without keys the server is open", async (t) => {
  const server = await startFakeServer();
  t.after(() => server.app.close());
  okJson(await postJson(server.app, "/v1/completions", COMPLETION));
  okJson(await postJson(server.app, "/v1/completions", COMPLETION, bearer("anything")));
});

test("CORS is off by default: no Access-Control headers, and a preflight is not answered", async (t) => {
  const server = await startFakeServer();
  t.after(() => server.app.close());
  const response = await postJson(server.app, "/v1/completions", COMPLETION, { origin: "https://app.example" });
  assert.equal(response.headers["access-control-allow-origin"], undefined);
  const preflight = await server.app.inject({
    method: "OPTIONS",
    url: "/v1/completions",
    headers: { origin: "https://app.example", "access-control-request-method": "POST" },
  });
  assert.equal(preflight.headers["access-control-allow-origin"], undefined);
  assert.equal(preflight.statusCode, 404);
});

test("an allowed origin gets its preflight answered without a key, and CORS headers even on a 401", async (t) => {
  const { app } = await startWithKeys(t, { corsOrigins: ["https://app.example"] });
  const preflight = await app.inject({
    method: "OPTIONS",
    url: "/v1/chat/completions",
    headers: {
      origin: "https://app.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });
  assert.equal(preflight.statusCode, 204);
  assert.equal(preflight.headers["access-control-allow-origin"], "https://app.example");
  assert.match(String(preflight.headers["access-control-allow-headers"]), /authorization/);
  assert.match(String(preflight.headers["access-control-allow-methods"]), /POST/);

  const refused = await postJson(app, "/v1/completions", COMPLETION, { origin: "https://app.example" });
  assert.equal(refused.statusCode, 401);
  assert.equal(
    refused.headers["access-control-allow-origin"],
    "https://app.example",
    "a browser can read why it was refused",
  );
  const allowed = await postJson(app, "/v1/completions", COMPLETION, {
    origin: "https://app.example",
    ...bearer(KEYS[0] as string),
  });
  assert.equal(allowed.statusCode, 200);
  assert.match(String(allowed.headers["access-control-expose-headers"]), /x-request-id/);

  const other = await postJson(app, "/v1/completions", COMPLETION, {
    origin: "https://evil.example",
    ...bearer(KEYS[0] as string),
  });
  assert.equal(
    other.headers["access-control-allow-origin"],
    undefined,
    "an origin not in the list gets no CORS headers",
  );
});

test("a CORS origin of * allows any origin", async (t) => {
  const server = await startFakeServer({}, { corsOrigins: ["*"] });
  t.after(() => server.app.close());
  const response = await postJson(server.app, "/v1/completions", COMPLETION, { origin: "https://anywhere.example" });
  assert.equal(response.headers["access-control-allow-origin"], "*");
});
