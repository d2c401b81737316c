/**
 * `npm run bench:load` itself, briefly, against a real pagoda serving stories260K: the CLI runs to completion,
 * writes its JSON report in the documented shape and counts no failures. Speed is never asserted here.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";
import type { Json } from "../server/support.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dir = mkdtempSync(path.join(tmpdir(), "pagoda-load-"));
let server: ModelServer;

before(async () => {
  server = await startModelServer(["--parallel", "4", "--ctx-size", "256"]);
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function runHarness(args: string[]): Promise<{ stdout: string; report: Json }> {
  const out = path.join(dir, `report-${args.length}.json`);
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "bench/load.ts", "--url", server.baseUrl, "--out", out, ...args],
    {
      cwd: repoRoot,
      timeout: 60_000,
    },
  );
  return { stdout, report: JSON.parse(readFileSync(out, "utf8")) };
}

function assertTargetShape(result: Json, label: string): void {
  assert.equal(result.label, label);
  assert.equal(result.model, STORIES_ID, "the model is discovered from /v1/models");
  for (const key of [
    "durationSeconds",
    "numRequests",
    "numOk",
    "numRateLimited",
    "numFailed",
    "numErrors",
    "numTimeouts",
    "requestsPerSecond",
    "completionTokens",
    "completionTokensPerSecond",
  ]) {
    assert.equal(typeof result[key], "number", `${key} is a number`);
  }
  for (const key of ["mean", "p50", "p90", "p99", "max"])
    assert.equal(typeof result.latencyMs[key], "number", `latencyMs.${key}`);
  assert.equal(result.numFailed, 0, JSON.stringify(result.statusCodes));
  assert.equal(result.numRateLimited, 0);
  assert.equal(result.numOk, result.numRequests);
  assert.deepEqual(result.statusCodes, { 200: result.numOk });
}

test("a streamed run with a fixed request count reports exact token counts, the TTFT/ITL probe and no failures", async () => {
  const { stdout, report } = await runHarness([
    "--requests",
    "16",
    "--concurrency",
    "4",
    "--max-tokens",
    "8",
    "--stream",
    "--probe-streams",
    "1",
  ]);
  assert.equal(report.harness, "pagoda bench:load");
  assert.equal(report.options.isStream, true);
  assert.equal(report.options.numRequests, 16);
  assert.equal(report.results.length, 1);
  const [result] = report.results;
  assertTargetShape(result, "pagoda");
  assert.equal(result.numRequests, 16);
  assert.equal(
    result.completionTokens,
    16 * 8,
    "ignore_eos makes every request generate max_tokens, read from the usage chunks",
  );
  assert.ok(result.probe.numStreams >= 1, "the probe ran alongside the load");
  assert.equal(result.probe.numFailed, 0);
  for (const key of ["count", "mean", "p50", "p90", "p99", "max"])
    assert.equal(typeof result.probe.ttftMs[key], "number", `ttftMs.${key}`);
  assert.equal(typeof result.probe.itlMs.p50, "number");
  assert.match(stdout, /^\s+pagoda \(stories260K\)\n/);
  assert.match(stdout, /^rate limited \(429\)\s+0$/m);
});

test("a chat run compared against a second server gives two results and a ratio column", async () => {
  const { stdout, report } = await runHarness([
    "--requests",
    "8",
    "--concurrency",
    "2",
    "--max-tokens",
    "4",
    "--chat",
    "--probe-streams",
    "0",
    "--compare-url",
    `${server.baseUrl}/v1`,
  ]);
  assert.equal(report.options.route, "chat");
  assert.deepEqual(
    report.results.map((result: Json) => result.label),
    ["pagoda", "compare"],
  );
  for (const result of report.results) {
    assertTargetShape(result, result.label);
    assert.equal(result.completionTokens, 8 * 4);
    assert.equal(result.probe, null);
  }
  assert.match(stdout.split("\n")[0] ?? "", /ratio$/);
});
