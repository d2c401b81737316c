/**
 * The real server process (`npm start`: bin/pagoda.js, the bundle in dist/ when it is current) on stories260K:
 * it reports the port it actually bound with --port 0, a SIGTERM during a running stream lets the stream finish cleanly and exits 0, and a second signal exits at once.
 */

import assert from "node:assert/strict";
import { get } from "node:http";
import { test } from "node:test";
import { STORIES_ID } from "../helpers/model-server.ts";
import { startProcess } from "../helpers/server-process.ts";

/** Opens a streamed completion and returns once its first frame has arrived, with a reader for the rest. */
async function openStream(
  url: string,
  body: Record<string, unknown>,
): Promise<{ first: string; rest: () => Promise<string> }> {
  const response = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: STORIES_ID,
      prompt: "Once upon a time",
      temperature: 0,
      ignore_eos: true,
      stream: true,
      ...body,
    }),
  });
  assert.equal(response.status, 200);
  assert.ok(response.body !== null);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const first = await reader.read();
  assert.equal(first.done, false);
  const rest = async (): Promise<string> => {
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
    }
  };
  return { first: decoder.decode(first.value, { stream: true }), rest };
}

test("with --port 0 the ready line names the port actually bound", async (t) => {
  const server = await startProcess(t);
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(new URL(server.url).port, "0");
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  server.child.kill("SIGTERM");
  assert.equal(await server.exited, 0);
});

/** The status of one GET on a fresh connection, as the kubelet probes. */
function probeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode ?? 0));
    }).on("error", reject);
  });
}

/** The last JSON frame before [DONE] of a finished SSE text. */
function lastFrame(text: string): { choices?: { finish_reason: string | null }[]; error?: { code?: string } } {
  assert.ok(text.endsWith("data: [DONE]\n\n"), text.slice(-200));
  const frames = text
    .trim()
    .split("\n\n")
    .map((frame) => frame.slice("data: ".length));
  return JSON.parse(frames.at(-2) ?? "{}") as {
    choices?: { finish_reason: string | null }[];
    error?: { code?: string };
  };
}

test("SIGTERM during 8 running streams: every probe during the drain is answered (readiness 503, liveness 200), all 8 finish cleanly with [DONE], then exit 0", async (t) => {
  const server = await startProcess(t, ["--shutdown-grace", "60", "--parallel", "8"]);
  // The last stream runs well past the others, so the probes that stop when the first seven end are all answered
  // inside the drain, not raced by the listener closing after it.
  const streams = await Promise.all(
    Array.from({ length: 8 }, (_, index) => openStream(server.url, { max_tokens: index < 7 ? 300 + index * 10 : 700 })),
  );
  server.child.kill("SIGTERM");
  // The signal is handled asynchronously: readiness turns 503 within a few requests.
  let readiness = 200;
  for (let attempt = 0; attempt < 1000 && readiness === 200; attempt++)
    readiness = await probeStatus(`${server.url}/health`);
  assert.equal(readiness, 503, "readiness fails once the drain starts");
  // A kubelet probes on fresh connections all through the drain; a reset counts as a failed probe.
  let isDrained = false;
  const probes = (async () => {
    const seen = { livez: new Set<number>(), health: new Set<number>(), count: 0 };
    while (!isDrained) {
      seen.livez.add(await probeStatus(`${server.url}/livez`));
      seen.health.add(await probeStatus(`${server.url}/health`));
      seen.count++;
    }
    return seen;
  })();
  const texts = streams.map(async (stream) => stream.first + (await stream.rest()));
  await Promise.all(texts.slice(0, 7));
  isDrained = true;
  const seen = await probes;
  assert.ok(seen.count > 0);
  assert.deepEqual([...seen.livez], [200], "liveness holds during the drain");
  assert.deepEqual([...seen.health], [503], "readiness stays failed during the drain");
  for (const text of await Promise.all(texts)) {
    const finish = lastFrame(text);
    assert.equal(finish.error, undefined, "no error frame: the stream ran to its end");
    assert.equal(finish.choices?.[0]?.finish_reason, "length");
  }
  assert.equal(await server.exited, 0);
  assert.ok(server.logs.some((line) => line.msg === "shutting down" && line.signal === "SIGTERM"));
});

test("streams still running when the grace period ends get a clean 503 error frame and [DONE]; exit code 0", async (t) => {
  const server = await startProcess(t, ["--shutdown-grace", "1", "--parallel", "8", "--ctx-size", "4096"]);
  const streams = await Promise.all(Array.from({ length: 8 }, () => openStream(server.url, { max_tokens: 4000 })));
  server.child.kill("SIGTERM");
  const texts = await Promise.all(streams.map(async (stream) => stream.first + (await stream.rest())));
  for (const text of texts) assert.equal(lastFrame(text).error?.code, "service_unavailable");
  assert.equal(await server.exited, 0);
});

test("a second signal while shutting down exits at once with code 1", async (t) => {
  // Eight long choices keep the grace period busy for far longer than two back-to-back signals take.
  const server = await startProcess(t, ["--shutdown-grace", "60", "--parallel", "8"]);
  const stream = await openStream(server.url, { max_tokens: 1900, n: 8 });
  server.child.kill("SIGTERM");
  server.child.kill("SIGINT");
  assert.equal(await server.exited, 1);
  assert.ok(
    server.logs.some((line) => line.msg === "second signal: exiting now"),
    JSON.stringify(server.logs.map((line) => line.msg)),
  );
  await stream.rest().catch(() => "the connection was cut, as expected");
});
