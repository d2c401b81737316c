import assert from "node:assert/strict";
import { test } from "node:test";
import type { AppDeps } from "../../src/server/app.ts";
import { FAKE_MODEL_ID, type FakeServer, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, okJson, postJson } from "./support.ts";

const COMPLETION = { model: FAKE_MODEL_ID, prompt: "Hi", max_tokens: 1, temperature: 0 };
const WINDOW_MS = 60_000;

async function start(
  t: { after: (fn: () => Promise<void>) => void },
  options: Partial<AppDeps> = {},
): Promise<FakeServer> {
  const server = await startFakeServer({}, { rateLimit: { maxRequests: 2, windowMs: WINDOW_MS }, ...options });
  t.after(() => server.app.close());
  return server;
}

test("past the limit a client gets 429 rate_limit_exceeded of type requests with Retry-After in seconds", async (t) => {
  const { app } = await start(t);
  okJson(await postJson(app, "/v1/completions", COMPLETION));
  const second = await postJson(app, "/v1/completions", COMPLETION);
  okJson(second);
  assert.equal(second.headers["x-ratelimit-remaining"], "0");
  const refused = await postJson(app, "/v1/completions", COMPLETION);
  const error = assertError(refused, { status: 429, type: "requests", code: "rate_limit_exceeded", param: null });
  assert.match(error.message, /limit 2 requests per 60 s/);
  const retryAfter = Number(refused.headers["retry-after"]);
  assert.ok(
    Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
    `Retry-After is whole seconds within the window: ${refused.headers["retry-after"]}`,
  );
});

test("every route shares one budget per client, but /health, /livez and /metrics are never limited", async (t) => {
  const { app } = await start(t);
  okJson(await app.inject({ method: "GET", url: "/v1/models" }));
  okJson(await postJson(app, "/tokenize", { prompt: "x" }));
  for (let i = 0; i < 5; i++) {
    assert.equal((await app.inject({ method: "GET", url: "/health" })).statusCode, 200);
    assert.equal((await app.inject({ method: "GET", url: "/livez" })).statusCode, 200);
    assert.equal((await app.inject({ method: "GET", url: "/metrics" })).statusCode, 200);
  }
  assertError(await postJson(app, "/v1/completions", COMPLETION), {
    status: 429,
    type: "requests",
    code: "rate_limit_exceeded",
  });
  const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
  assert.match(metrics, /^pagoda_requests_rejected_total\{reason="rate_limited"\} 1$/m);
  assert.match(
    metrics,
    /^pagoda_requests_rejected_total\{reason="queue_full"\} 0$/m,
    "a rate limit is not a full queue",
  );
});

test("with API keys each key has its own budget", async (t) => {
  const { app } = await start(t, { apiKeys: ["key-a", "key-b"] });
  const as = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
  okJson(await postJson(app, "/v1/completions", COMPLETION, as("key-a")));
  okJson(await postJson(app, "/v1/completions", COMPLETION, as("key-a")));
  const refused = await postJson(app, "/v1/completions", COMPLETION, as("key-a"));
  assert.match(
    assertError(refused, { status: 429, type: "requests", code: "rate_limit_exceeded" }).message,
    /for this API key/,
  );
  okJson(await postJson(app, "/v1/completions", COMPLETION, as("key-b")));
  // Requests without a valid key are refused before they are counted against anyone.
  for (let i = 0; i < 3; i++)
    assert.equal((await postJson(app, "/v1/completions", COMPLETION, as("wrong"))).statusCode, 401);
  okJson(await postJson(app, "/v1/completions", COMPLETION, as("key-b")));
});

test("without keys each client address has its own budget", async (t) => {
  const { app } = await start(t);
  const from = (ip: string) => (url: string) =>
    app.inject({
      method: "POST",
      url,
      remoteAddress: ip,
      headers: { "content-type": "application/json" },
      payload: JSON.stringify(COMPLETION),
    });
  for (let i = 0; i < 2; i++) assert.equal((await from("10.0.0.1")("/v1/completions")).statusCode, 200);
  const refused = await from("10.0.0.1")("/v1/completions");
  assert.match(
    assertError(refused, { status: 429, type: "requests", code: "rate_limit_exceeded" }).message,
    /for this client address/,
  );
  assert.equal((await from("10.0.0.2")("/v1/completions")).statusCode, 200);
});

test("a client's own X-Forwarded-For entries are ignored: only the trusted hop's entry counts", async (t) => {
  const { app } = await start(t, { trustProxy: 1 });
  const spoofed = (fake: string) =>
    postJson(app, "/v1/completions", COMPLETION, { "x-forwarded-for": `${fake}, 203.0.113.9` });
  await spoofed("6.6.6.1");
  await spoofed("6.6.6.2");
  assert.equal((await spoofed("6.6.6.3")).statusCode, 429, "rotating the leftmost entry does not escape the limit");
});

test("behind a trusted proxy the client address comes from X-Forwarded-For", async (t) => {
  const { app } = await start(t, { trustProxy: 1 });
  const via = (client: string) => postJson(app, "/v1/completions", COMPLETION, { "x-forwarded-for": client });
  await via("203.0.113.1");
  await via("203.0.113.1");
  assert.equal((await via("203.0.113.1")).statusCode, 429);
  assert.equal((await via("203.0.113.2")).statusCode, 200);
});

test("rate limiting is off by default", async (t) => {
  const server = await startFakeServer();
  t.after(() => server.app.close());
  for (let i = 0; i < 5; i++) okJson(await postJson(server.app, "/v1/completions", COMPLETION));
  assert.equal((await postJson(server.app, "/v1/completions", COMPLETION)).headers["x-ratelimit-limit"], undefined);
});
