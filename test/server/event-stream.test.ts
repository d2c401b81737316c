import assert from "node:assert/strict";
import type { PassThrough } from "node:stream";
import { test } from "node:test";
import type { FastifyReply } from "fastify";
import { EventStream } from "../../src/server/sse.ts";

/** A reply that captures the stream it is sent and never reads it: a client that stopped reading. */
function stalledReply(): { reply: FastifyReply; sent: () => PassThrough } {
  let stream: PassThrough | null = null;
  const reply = {
    header() {
      return reply;
    },
    send(payload: PassThrough) {
      stream = payload;
      return reply;
    },
  };
  return {
    reply: reply as unknown as FastifyReply,
    sent: () => {
      assert.ok(stream !== null);
      return stream;
    },
  };
}

const CHUNK = { text: "x".repeat(1024) };

/** Sends until a send has to wait for the client; returns that pending send and how many were sent. */
async function fillUntilWaiting(stream: EventStream): Promise<{ pending: Promise<void>; numSent: number }> {
  for (let numSent = 1; ; numSent++) {
    let isDone = false;
    const pending = stream.send(CHUNK).then(() => {
      isDone = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    if (!isDone) return { pending, numSent };
  }
}

test("a write waiting on a client that stopped reading is cut off when the deadline passes", async () => {
  const { reply, sent } = stalledReply();
  const deadline = new AbortController();
  const stream = new EventStream(reply, deadline.signal);
  const { pending, numSent } = await fillUntilWaiting(stream);
  assert.ok(numSent > 1);
  assert.equal(stream.isClosed, false);
  deadline.abort(new Error("deadline"));
  await pending;
  assert.equal(stream.isClosed, true);
  assert.equal(sent().destroyed, true, "the response stream is destroyed, which closes the connection");
  await stream.send(CHUNK);
  await stream.done();
});

test("without a passed deadline a full buffer simply waits for the client", async () => {
  const { reply, sent } = stalledReply();
  const stream = new EventStream(reply, new AbortController().signal);
  const { pending } = await fillUntilWaiting(stream);
  sent().resume();
  await pending;
  assert.equal(stream.isClosed, false);
});
