/**
 * The Kubernetes probes: /health is readiness (503 while loading and while draining, so no new work arrives) and
 * /livez is liveness (200 in both, so the kubelet never restarts a pod that is loading a model or finishing its
 * streams). Probed over a real socket during the drain, as the kubelet does: inject refuses requests once Fastify
 * is closing. That a stream running across the close finishes within the grace is shutdown.test.ts's.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { get } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { test } from "node:test";
import { pino } from "pino";
import { buildApp } from "../../src/server/app.ts";
import { ServingState } from "../../src/server/serving-state.ts";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { postJson, StepGate } from "./support.ts";

/** One GET on a fresh connection, as the kubelet probes (no keep-alive: a closing server drops idle sockets). */
function probe(baseUrl: string, path: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    get(`${baseUrl}${path}`, { agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }),
      );
    }).on("error", reject);
  });
}

test("while the model loads /livez is 200 and /health is 503", async (t) => {
  const serving = new ServingState();
  const app = await buildApp({ serving, apiKeys: ["secret"] });
  t.after(() => app.close());
  const live = await app.inject({ method: "GET", url: "/livez" });
  assert.equal(live.statusCode, 200);
  assert.deepEqual(JSON.parse(live.body), { status: "loading" });
  const ready = await app.inject({ method: "GET", url: "/health" });
  assert.equal(ready.statusCode, 503);
  assert.deepEqual(JSON.parse(ready.body), { status: "loading" });
});

test("while a closing server drains a stream, /livez stays 200 and /health is 503 on the same port", async (t) => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 60_000 });
  t.after(() => gate.releaseAll());
  await server.app.listen({ host: "127.0.0.1", port: 0 });
  const baseUrl = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  assert.deepEqual(await probe(baseUrl, "/livez"), { status: 200, body: { status: "ready" } });
  assert.deepEqual(await probe(baseUrl, "/health"), { status: 200, body: { status: "ok" } });

  const hold = gate.holdAt(2);
  const streamed = postJson(server.app, "/v1/completions", {
    model: FAKE_MODEL_ID,
    prompt: "hello",
    max_tokens: 20,
    stream: true,
  });
  await hold.reached;
  // What main's SIGTERM handler calls.
  const closed = server.app.close();
  assert.deepEqual(await probe(baseUrl, "/livez"), { status: 200, body: { status: "closing" } });
  assert.deepEqual(await probe(baseUrl, "/health"), { status: 503, body: { status: "closing" } });
  hold.release();
  assert.equal((await streamed).statusCode, 200);
  await closed;
});

// A kubelet's probe connection accepted just as the drain starts has not sent its request yet; cutting it then
// (as idle) fails the probe with a reset.
test("a connection opened before the close and sending its request after it is answered, not reset", async (t) => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 60_000 });
  t.after(() => gate.releaseAll());
  await server.app.listen({ host: "127.0.0.1", port: 0 });
  const port = (server.app.server.address() as AddressInfo).port;
  const hold = gate.holdAt(2);
  const streamed = postJson(server.app, "/v1/completions", { model: FAKE_MODEL_ID, prompt: "hello", max_tokens: 20 });
  await hold.reached;
  const socket = connect(port, "127.0.0.1");
  const answer = new Promise<string>((resolve, reject) => {
    socket.once("data", (chunk: Buffer) => resolve(chunk.toString("utf8")));
    socket.once("close", () => reject(new Error("the server closed the connection without an answer")));
    socket.once("error", reject);
  });
  await once(socket, "connect");
  const closed = server.app.close();
  await new Promise((resolve) => setTimeout(resolve, 50));
  socket.write("GET /livez HTTP/1.1\r\nHost: probe\r\n\r\n");
  assert.match(await answer, /^HTTP\/1\.1 200 .*\r\n(.*\r\n)*connection: close\r\n/i);
  socket.destroy();
  hold.release();
  assert.equal((await streamed).statusCode, 200);
  await closed;
});

// Fastify runs preClose hooks under its plugin timeout (10 s by default); a drain held past it must still answer
// probes on the open listener and end with a close that succeeds (main exits 0 on it).
test("a drain that outlasts Fastify's default 10 s hook timeout keeps answering probes and closes cleanly", async (t) => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 60_000 });
  t.after(() => gate.releaseAll());
  await server.app.listen({ host: "127.0.0.1", port: 0 });
  const baseUrl = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  const hold = gate.holdAt(2);
  const streamed = postJson(server.app, "/v1/completions", { model: FAKE_MODEL_ID, prompt: "hello", max_tokens: 20 });
  await hold.reached;
  const closed = server.app.close();
  const until = Date.now() + 11_000;
  while (Date.now() < until) {
    assert.equal((await probe(baseUrl, "/livez")).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  hold.release();
  assert.equal((await streamed).statusCode, 200);
  await closed;
});

test("a failed server is not alive: /livez and /health are 503", async (t) => {
  const serving = new ServingState();
  serving.markFailed();
  const app = await buildApp({ serving });
  t.after(() => app.close());
  const live = await app.inject({ method: "GET", url: "/livez" });
  assert.equal(live.statusCode, 503);
  assert.deepEqual(JSON.parse(live.body), { status: "failed" });
  assert.equal((await app.inject({ method: "GET", url: "/health" })).statusCode, 503);
});

test("successful probes and scrapes log at debug, other requests at info", async () => {
  const lines: { level: number; url?: string; msg?: string }[] = [];
  const logger = pino(
    { level: "info" },
    { write: (line: string) => lines.push(JSON.parse(line) as { level: number; url?: string }) },
  );
  const { app } = await startFakeServer({}, { logger });
  try {
    for (const url of ["/health", "/livez", "/metrics", "/metrics/router", "/v1/models"])
      await app.inject({ method: "GET", url });
    const logged = lines.filter((line) => line.msg === "request completed").map((line) => line.url);
    assert.deepEqual(logged, ["/v1/models"]);
  } finally {
    await app.close();
  }
});
