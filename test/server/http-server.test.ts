import assert from "node:assert/strict";
import { Duplex } from "node:stream";
import { test } from "node:test";
import { clientErrorHandler } from "../../src/server/error-handler.ts";
import { startFakeServer } from "../helpers/fake-server.ts";
import { getOpenApiValidator } from "../helpers/openapi.ts";

test("Node's server bounds receiving a request (30 s for headers, 120 s in all) and keeps idle connections 72 s", async (t) => {
  const { app } = await startFakeServer();
  t.after(() => app.close());
  assert.equal(app.server.headersTimeout, 30_000);
  assert.equal(app.server.requestTimeout, 120_000);
  assert.equal(app.server.keepAliveTimeout, 72_000);
  assert.equal(app.server.timeout, 0, "no socket idle timeout: a queued request or a slow stream is never cut");
});

test("the keep-alive timeout is configurable", async (t) => {
  const { app } = await startFakeServer({}, { keepAliveTimeoutMs: 5_000 });
  t.after(() => app.close());
  assert.equal(app.server.keepAliveTimeout, 5_000);
});

/** A socket that records what is written to it; like Node's server, it listens for the error it is destroyed with. */
class RecordingSocket extends Duplex {
  written = "";
  constructor() {
    super();
    this.on("error", () => undefined);
  }
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.written += chunk.toString("utf8");
    callback();
  }
}

function errorWithCode(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code });
}

test("a client too slow to send its request gets a 408 in OpenAI's envelope and the connection is closed", () => {
  const socket = new RecordingSocket();
  clientErrorHandler(errorWithCode("ERR_HTTP_REQUEST_TIMEOUT"), socket);
  const [head = "", body = ""] = socket.written.split("\r\n\r\n");
  assert.match(head, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.match(head, /\r\nConnection: close\r\n/);
  assert.match(head, new RegExp(`\\r\\nContent-Length: ${Buffer.byteLength(body)}$`));
  const parsed = JSON.parse(body) as { error: { code: string; type: string } };
  assert.ok(getOpenApiValidator("ErrorResponse")(parsed).ok);
  assert.deepEqual([parsed.error.type, parsed.error.code], ["invalid_request_error", "request_timeout"]);
  assert.equal(socket.destroyed, true);
});

test("a reset connection is left alone, and nothing is written into a response already under way", () => {
  const reset = new RecordingSocket();
  clientErrorHandler(errorWithCode("ECONNRESET"), reset);
  assert.equal(reset.written, "");
  assert.equal(reset.destroyed, false);

  const busy = Object.assign(new RecordingSocket(), { _httpMessage: { headersSent: true } });
  clientErrorHandler(errorWithCode("HPE_INVALID_METHOD"), busy);
  assert.equal(busy.written, "");
  assert.equal(busy.destroyed, true);
});
