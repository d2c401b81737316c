/**
 * Keep-alive clients hammering a listening app whose engine is slow and small (2 sequences, 4 queue places), so
 * most requests queue and many are refused. Every request must get an HTTP answer: 200, or 429 with Retry-After in
 * OpenAI's envelope (401 for a wrong key), and never a reset or closed connection ("other side closed",
 * ECONNRESET, "socket hang up"), including on reused connections and when a refusal leaves the body unread.
 */

import assert from "node:assert/strict";
import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { AppDeps } from "../../src/server/app.ts";
import { FAKE_MODEL_ID, type FakeServer, startFakeServer } from "../helpers/fake-server.ts";
import { getOpenApiValidator } from "../helpers/openapi.ts";

const validateError = getOpenApiValidator("ErrorResponse");

interface Outcome {
  readonly status: number | null;
  readonly headers: IncomingHttpHeaders | Record<string, string>;
  readonly body: string;
  readonly error: string | null;
  readonly isReused: boolean;
}

interface LoadServer {
  readonly server: FakeServer;
  readonly port: number;
  /** TCP connections the server accepted. */
  numConnections(): number;
}

async function startLoadServer(
  t: { after: (fn: () => Promise<void>) => void },
  appOptions: Partial<AppDeps> = {},
): Promise<LoadServer> {
  // A millisecond per step stands in for decode time, so requests overlap and the queue fills.
  const server = await startFakeServer(
    { numSequences: 2, beforeStep: () => delay(1) },
    { maxNumWaiting: 4, ...appOptions },
  );
  let numConnections = 0;
  server.app.server.on("connection", () => {
    numConnections += 1;
  });
  await server.app.listen({ host: "127.0.0.1", port: 0 });
  t.after(() => server.app.close());
  return { server, port: (server.app.server.address() as AddressInfo).port, numConnections: () => numConnections };
}

interface Call {
  readonly path: string;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
}

function viaAgent(agent: Agent, port: number, call: Call): Promise<Outcome> {
  const payload = Buffer.from(JSON.stringify(call.body));
  return new Promise((resolve) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path: call.path,
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": payload.length, ...call.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? null,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
            error: null,
            isReused: req.reusedSocket,
          }),
        );
        res.on("error", (error: NodeJS.ErrnoException) =>
          resolve({
            status: res.statusCode ?? null,
            headers: res.headers,
            body: "",
            error: error.code ?? error.message,
            isReused: req.reusedSocket,
          }),
        );
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) =>
      resolve({ status: null, headers: {}, body: "", error: error.code ?? error.message, isReused: req.reusedSocket }),
    );
    req.end(payload);
  });
}

/** Node's fetch (undici), which keeps connections alive by default. */
async function viaFetch(port: number, call: Call): Promise<Outcome> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${call.path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...call.headers },
      body: JSON.stringify(call.body),
    });
    return {
      status: response.status,
      headers: Object.fromEntries(response.headers),
      body: await response.text(),
      error: null,
      isReused: false,
    };
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return {
      status: null,
      headers: {},
      body: "",
      error: cause?.code ?? cause?.message ?? String(error),
      isReused: false,
    };
  }
}

/** Runs `count` calls with `concurrency` in flight at once. */
async function hammer(
  count: number,
  concurrency: number,
  send: (index: number) => Promise<Outcome>,
): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      outcomes[index] = await send(index);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return outcomes;
}

const CALLS: readonly Call[] = [
  { path: "/v1/completions", body: { model: FAKE_MODEL_ID, prompt: "keep alive", max_tokens: 4, temperature: 0 } },
  { path: "/v1/completions", body: { model: FAKE_MODEL_ID, prompt: "stream", max_tokens: 4, stream: true } },
  {
    path: "/v1/chat/completions",
    body: { model: FAKE_MODEL_ID, messages: [{ role: "user", content: "Hi" }], max_tokens: 3 },
  },
  {
    path: "/v1/chat/completions",
    body: { model: FAKE_MODEL_ID, messages: [{ role: "user", content: "Hi" }], max_tokens: 3, stream: true },
  },
];

/** Asserts every outcome is an answer with an allowed status; 4xx ones in OpenAI's envelope, 429s with Retry-After. */
function assertAnswered(outcomes: readonly Outcome[], allowed: readonly number[]): Map<number, number> {
  const errors = outcomes
    .filter((outcome) => outcome.error !== null)
    .map((outcome) => `${outcome.error}${outcome.isReused ? " (reused connection)" : ""}`);
  assert.deepEqual(errors, [], "no connection was reset or closed under a request");
  const byStatus = new Map<number, number>();
  for (const outcome of outcomes) {
    const status = outcome.status ?? 0;
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    assert.ok(allowed.includes(status), `unexpected ${status}: ${outcome.body.slice(0, 200)}`);
    if (status < 400) continue;
    assert.ok(validateError(JSON.parse(outcome.body)).ok, outcome.body);
    if (status === 429) assert.match(String((outcome.headers as Record<string, unknown>)["retry-after"]), /^\d+$/);
  }
  return byStatus;
}

test("overloaded keep-alive clients on node:http get 200 or 429 with Retry-After, never a reset, on reused connections", async (t) => {
  const { port, numConnections, server } = await startLoadServer(t);
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  t.after(() => agent.destroy());
  const outcomes = await hammer(400, 24, (index) => viaAgent(agent, port, CALLS[index % CALLS.length] as Call));
  const byStatus = assertAnswered(outcomes, [200, 429]);
  assert.ok(
    (byStatus.get(200) ?? 0) > 0 && (byStatus.get(429) ?? 0) > 0,
    `both served and refused requests: ${JSON.stringify([...byStatus])}`,
  );
  // 400 requests over at most 16 connections: each connection carried about 25 requests, refusals included.
  assert.ok(numConnections() <= 16, `at most one connection per agent socket, got ${numConnections()}`);
  assert.equal(server.engine.numAcquiredSequences, 0);
});

test("overloaded fetch (undici) clients get 200 or 429, never 'other side closed'", async (t) => {
  const { port, numConnections } = await startLoadServer(t);
  const outcomes = await hammer(400, 24, (index) => viaFetch(port, CALLS[index % CALLS.length] as Call));
  const byStatus = assertAnswered(outcomes, [200, 429]);
  assert.ok((byStatus.get(429) ?? 0) > 0);
  assert.ok(numConnections() < 100, `connections were kept alive: ${numConnections()} for 400 requests`);
});

test("rate-limited and unauthenticated requests with unread bodies never reset a kept-alive connection", async (t) => {
  const { port, numConnections } = await startLoadServer(t, {
    apiKeys: ["good-key"],
    rateLimit: { maxRequests: 60, windowMs: 60_000 },
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.after(() => agent.destroy());
  // Refused in onRequest, before the 64 KiB body is read: Node must skip the body and keep the connection usable.
  const padding = "p".repeat(64 * 1024);
  const outcomes = await hammer(300, 16, (index) => {
    const call = CALLS[index % CALLS.length] as Call;
    const key = index % 3 === 0 ? "wrong-key" : "good-key";
    return viaAgent(agent, port, {
      ...call,
      body: { ...(call.body as object), padding },
      headers: { authorization: `Bearer ${key}` },
    });
  });
  const byStatus = assertAnswered(outcomes, [200, 401, 429]);
  assert.equal(byStatus.get(401), 100);
  const rateLimited = outcomes.filter(
    (outcome) => outcome.status === 429 && outcome.body.includes('"rate_limit_exceeded"'),
  );
  assert.ok(rateLimited.length >= 200 - 60, `the rate limit refused the rest: ${rateLimited.length}`);
  assert.ok(numConnections() <= 8, `connections survived every refusal: ${numConnections()}`);
});
