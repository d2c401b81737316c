import assert from "node:assert/strict";
import { once } from "node:events";
import { Agent, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { FAKE_MODEL_ID, parseSse, startFakeServer } from "../helpers/fake-server.ts";
import { assertError, postJson, StepGate } from "./support.ts";

const STREAM_BODY = { model: FAKE_MODEL_ID, prompt: "hello", max_tokens: 50, temperature: 0, stream: true };

test("closing lets a running stream finish within the grace period and refuses new requests with 503", async () => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 60_000 });
  const hold = gate.holdAt(2);
  const streamed = postJson(server.app, "/v1/completions", STREAM_BODY);
  await hold.reached;
  const closed = server.app.close();
  const refused = await postJson(server.app, "/v1/completions", { model: FAKE_MODEL_ID, prompt: "x" });
  const body = assertError(refused, { status: 503, type: "service_unavailable", code: "service_unavailable" });
  assert.match(body.message, /shutting down/);
  assert.equal(refused.headers["retry-after"], "5");
  hold.release();
  const frames = parseSse((await streamed).body);
  await closed;
  assert.equal(frames.at(-1), "[DONE]");
  const finish = JSON.parse(frames.at(-2) ?? "{}") as { choices: { finish_reason: string }[] };
  assert.equal(finish.choices[0]?.finish_reason, "length", "the stream ran to max_tokens");
  assert.equal(server.engine.isDisposed, true, "the model is disposed once the server has closed");
});

test("a stream still running when the grace period ends gets a 503 error frame, then [DONE]", async () => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 0 });
  const hold = gate.holdAt(2);
  const streamed = postJson(server.app, "/v1/completions", STREAM_BODY);
  await hold.reached;
  const closed = server.app.close();
  hold.release();
  const frames = parseSse((await streamed).body);
  await closed;
  assert.equal(frames.at(-1), "[DONE]");
  const errorFrame = JSON.parse(frames.at(-2) ?? "{}") as { error?: { type: string; code: string } };
  assert.deepEqual(
    { type: errorFrame.error?.type, code: errorFrame.error?.code },
    { type: "service_unavailable", code: "service_unavailable" },
  );
  assert.equal(server.engine.numAcquiredSequences, 0);
});

test("a non-streamed request cut off by shutdown is answered 503 with Retry-After, not a truncated 200", async () => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 0 });
  const hold = gate.holdAt(1);
  const pending = postJson(server.app, "/v1/completions", { ...STREAM_BODY, stream: false });
  await hold.reached;
  const closed = server.app.close();
  hold.release();
  const response = await pending;
  await closed;
  assertError(response, { status: 503, type: "service_unavailable", code: "service_unavailable" });
  assert.equal(response.headers["retry-after"], "5");
});

test("while closing every answer carries Connection: close, including the running request's, and new work gets 503", async () => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { shutdownGraceMs: 60_000 });
  const hold = gate.holdAt(1);
  const before = await server.app.inject({ method: "GET", url: "/health" });
  assert.equal(before.headers.connection, "keep-alive");
  const running = postJson(server.app, "/v1/completions", { ...STREAM_BODY, stream: false, max_tokens: 3 });
  await hold.reached;
  const closed = server.app.close();
  // inject refuses requests once Fastify has marked itself closing, so this is the one request sent after close().
  const refused = await postJson(server.app, "/v1/chat/completions", {
    model: FAKE_MODEL_ID,
    messages: [{ role: "user", content: "x" }],
  });
  assertError(refused, { status: 503, type: "service_unavailable", code: "service_unavailable" });
  assert.equal(refused.headers.connection, "close");
  assert.equal(refused.headers["retry-after"], "5");
  hold.release();
  const finished = await running;
  assert.equal(finished.statusCode, 200, "the running request still finished within the grace period");
  assert.equal(finished.headers.connection, "close", "its client is told not to reuse the connection");
  await closed;
});

test("a keep-alive connection whose stream ends during the grace period is closed then, not after the keep-alive timeout", {
  timeout: 20_000,
}, async () => {
  const gate = new StepGate();
  // A keep-alive timeout far beyond the test's own timeout: only closing the connection lets close() finish in time.
  const server = await startFakeServer(
    { beforeStep: gate.beforeStep },
    { shutdownGraceMs: 60_000, keepAliveTimeoutMs: 600_000 },
  );
  await server.app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = server.app.server.address() as AddressInfo;
  const agent = new Agent({ keepAlive: true });
  const hold = gate.holdAt(2);
  const streamed = new Promise<{ body: string; socketClosed: Promise<unknown> }>((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/v1/completions",
        method: "POST",
        agent,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        const socketClosed = once(res.socket, "close");
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ body: Buffer.concat(chunks).toString("utf8"), socketClosed }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify({ ...STREAM_BODY, max_tokens: 5 }));
  });
  await hold.reached;
  const closed = server.app.close();
  hold.release();
  const { body, socketClosed } = await streamed;
  assert.ok(body.endsWith("data: [DONE]\n\n"));
  await socketClosed;
  await closed;
  agent.destroy();
});

/** Holds every embed until released. */
function embedGate(): { readonly beforeEmbed: () => Promise<void>; readonly reached: Promise<void>; release(): void } {
  let release: () => void = () => {};
  let reached: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const isReached = new Promise<void>((resolve) => {
    reached = resolve;
  });
  return {
    beforeEmbed: () => {
      reached();
      return released;
    },
    reached: isReached,
    release,
  };
}

test("closing lets a running embedding request finish within the grace period", async () => {
  const gate = embedGate();
  const server = await startFakeServer({ beforeEmbed: gate.beforeEmbed }, { shutdownGraceMs: 60_000 });
  const embedded = postJson(server.app, "/v1/embeddings", { model: FAKE_MODEL_ID, input: ["a", "b"] });
  await gate.reached;
  let isClosed = false;
  const closed = server.app.close().then(() => {
    isClosed = true;
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(isClosed, false, "the close waits for the embedding request");
  gate.release();
  const response = await embedded;
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(JSON.parse(response.body).data.length, 2);
  await closed;
});

test("an embedding request still running when the grace period ends is answered 503 with Retry-After", async () => {
  const gate = embedGate();
  const server = await startFakeServer({ beforeEmbed: gate.beforeEmbed }, { shutdownGraceMs: 0 });
  const embedded = postJson(server.app, "/v1/embeddings", { model: FAKE_MODEL_ID, input: "a" });
  await gate.reached;
  const closed = server.app.close();
  const response = await embedded;
  assertError(response, { status: 503, type: "service_unavailable", code: "service_unavailable" });
  assert.equal(response.headers["retry-after"], "5");
  await closed;
  gate.release();
});
