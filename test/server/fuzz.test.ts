/**
 * Thousands of malformed and hostile requests (see hostile-requests.ts) through `inject`, then a smaller run over
 * a real socket, including bytes Node's HTTP parser itself refuses. Every answer must be a 4xx in OpenAI's error
 * envelope (or a 2xx for a mutation that happens to be valid), never a 5xx; nothing may pollute
 * Object.prototype; and the server must still serve a valid request afterwards. Seeds are fixed; fast-check
 * prints the seed and the shrunk counterexample of a failure, and each assertion describes the request.
 */

import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { getOpenApiValidator } from "../helpers/openapi.ts";
import { describeRequest, type HostileRequest, hostileRequest } from "./hostile-requests.ts";
import { okJson, postJson } from "./support.ts";

const INJECT_SEED = 0x5eed_0001;
const SOCKET_SEED = 0x5eed_0002;
const NUM_INJECT_RUNS = 2500;
const NUM_SOCKET_RUNS = 250;

const validateError = getOpenApiValidator("ErrorResponse");

let app: FastifyInstance;
let baseUrl: string;

before(async () => {
  // EOS after a few tokens keeps the mutations that happen to be valid quick.
  ({ app } = await startFakeServer({ eosAfter: 3 }, { maxNumWaiting: 64 }));
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  baseUrl = `http://127.0.0.1:${address.port}`;
});

after(async () => {
  await app.close();
});

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/** The property every answer to a hostile request must have. */
function checkAnswer(request: HostileRequest, answer: Answer): void {
  const what = `${describeRequest(request)} → ${answer.status} ${answer.body.slice(0, 300)}`;
  assert.ok(answer.status >= 200 && answer.status < 500, `not a 2xx or 4xx: ${what}`);
  if (answer.status < 300) return;
  assert.match(answer.contentType, /^application\/json/, `error without a JSON body: ${what}`);
  const body: unknown = JSON.parse(answer.body);
  const result = validateError(body);
  assert.ok(result.ok, `not OpenAI's error envelope (${result.errors}): ${what}`);
  assert.deepEqual(Object.keys(body as object), ["error"], what);
  assert.ok(((body as { error: { message: string } }).error.message ?? "").length > 0, `empty message: ${what}`);
}

function assertPrototypesClean(): void {
  assert.deepEqual(
    Object.getOwnPropertyNames(Object.prototype).filter((name) => !BUILTIN_OBJECT_PROTOTYPE.has(name)),
    [],
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(([] as unknown as Record<string, unknown>).polluted, undefined);
}
const BUILTIN_OBJECT_PROTOTYPE = new Set(Object.getOwnPropertyNames(Object.prototype));

async function assertStillServing(): Promise<void> {
  const body = okJson(
    await postJson(app, "/v1/completions", {
      model: FAKE_MODEL_ID,
      prompt: "still here",
      max_tokens: 2,
      temperature: 0,
    }),
  );
  assert.equal(body.choices.length, 1);
}

function headers(request: HostileRequest): Record<string, string> {
  return request.contentType === undefined ? {} : { "content-type": request.contentType };
}

test(`${NUM_INJECT_RUNS} hostile requests through inject are all answered 4xx in OpenAI's envelope, never 5xx`, async () => {
  await fc.assert(
    fc.asyncProperty(hostileRequest, async (request) => {
      const response = await app.inject({
        method: "POST",
        url: request.url,
        headers: headers(request),
        payload: request.payload,
      });
      checkAnswer(request, {
        status: response.statusCode,
        contentType: String(response.headers["content-type"] ?? ""),
        body: response.body,
      });
      assertPrototypesClean();
    }),
    { seed: INJECT_SEED, numRuns: NUM_INJECT_RUNS, endOnFailure: true },
  );
  await assertStillServing();
  assert.equal(app.serverMetrics !== undefined, true);
});

test(`${NUM_SOCKET_RUNS} hostile requests over a real socket are answered 4xx in OpenAI's envelope, never 5xx`, async () => {
  await fc.assert(
    fc.asyncProperty(hostileRequest, async (request) => {
      const response = await fetch(`${baseUrl}${request.url}`, {
        method: "POST",
        headers: headers(request),
        body: new Uint8Array(request.payload),
      });
      checkAnswer(request, {
        status: response.status,
        contentType: response.headers.get("content-type") ?? "",
        body: await response.text(),
      });
    }),
    { seed: SOCKET_SEED, numRuns: NUM_SOCKET_RUNS, endOnFailure: true },
  );
  await assertStillServing();
});

/** Sends raw bytes on a new connection and returns everything the server wrote before closing it. */
function rawExchange(bytes: string | Buffer): Promise<string> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("utf8")));
    socket.end(bytes);
  });
}

const RAW_HTTP: readonly { readonly what: string; readonly bytes: string | Buffer; readonly status: number }[] = [
  { what: "a garbage request line", bytes: "HELLO\r\n\r\n", status: 400 },
  {
    what: "a header without a colon",
    bytes: "POST /v1/completions HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n",
    status: 400,
  },
  {
    what: "headers over the size limit",
    bytes: `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
    status: 431,
  },
  {
    what: "invalid chunked encoding",
    bytes:
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    status: 400,
  },
  {
    what: "both Content-Length and chunked",
    bytes:
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    status: 400,
  },
  {
    what: "a NUL in the request line",
    bytes: Buffer.from("GET /hea\u0000lth HTTP/1.1\r\nHost: x\r\n\r\n"),
    status: 400,
  },
  { what: "a bad HTTP version", bytes: "GET /health HTTP/9.9\r\nHost: x\r\n\r\n", status: 400 },
];

for (const { what, bytes, status } of RAW_HTTP) {
  test(`${what} is answered ${status} in OpenAI's envelope and the connection closed`, async () => {
    const reply = await rawExchange(bytes);
    const [head = "", body = ""] = reply.split("\r\n\r\n");
    assert.match(head, new RegExp(`^HTTP/1\\.1 ${status} `), reply.slice(0, 200));
    assert.match(head, /\r\nconnection: close/i);
    assert.ok(validateError(JSON.parse(body)).ok, body);
    await assertStillServing();
  });
}

test("a valid request over the socket still succeeds after all of it", async () => {
  const response = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: FAKE_MODEL_ID, messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
  });
  assert.equal(response.status, 200);
  assert.equal(((await response.json()) as { object: string }).object, "chat.completion");
  assert.equal((await fetch(`${baseUrl}/health`)).status, 200);
});
