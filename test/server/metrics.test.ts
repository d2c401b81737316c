/**
 * /metrics after a scripted sequence of requests: every counter and histogram count has its exact expected value,
 * under vLLM's and llama-server's names, and promtool accepts the exposition.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { Registry } from "prom-client";
import { ServerMetrics } from "../../src/metrics/server-metrics.ts";
import type { KvCacheState } from "../../src/scheduler/scheduler.ts";
import type { SpecStats } from "../../src/spec/speculator.ts";
import { FAKE_MODEL_ID, parseSse, startFakeServer } from "../helpers/fake-server.ts";
import { postJson, StepGate } from "./support.ts";

const LABELS = `model_name="${FAKE_MODEL_ID}",engine="0"`;

/** Sample values by series, e.g. `vllm:prompt_tokens_total{model_name="…",engine="0"}` → 6. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** promtool's findings on the exposition, one per line; null where promtool is not installed. */
function promtoolFindings(exposition: string): string[] | null {
  const result = spawnSync("promtool", ["check", "metrics"], { input: exposition, encoding: "utf8" });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") return null;
  if (result.error !== undefined) throw result.error;
  // 0: clean; 3: lint findings only. Anything else (1 for an unparsable exposition) is a failure in itself.
  assert.ok(result.status === 0 || result.status === 3, `promtool exited ${result.status}: ${result.stderr}`);
  return `${result.stdout}${result.stderr}`.split("\n").filter((line) => line.trim().length > 0);
}

/**
 * Exactly the findings promtool's linter must report: one colon warning per vLLM and llama-server family, since
 * Prometheus reserves colons for recording rules and those names keep them on purpose. Anything else is a
 * defect, and so is a missing expected finding (promtool would then not be checking what this test thinks).
 */
function expectedFindings(exposition: string): string[] {
  const sampled = new Set(
    exposition
      .split("\n")
      .filter((line) => line.length > 0 && !line.startsWith("#"))
      .map((line) => (/^[^{ ]+/.exec(line)?.[0] ?? "").replace(/_(bucket|sum|count)$/, "")),
  );
  // promtool lints the families that have samples; a labelled family nothing has recorded yet has none.
  const families = [...exposition.matchAll(/^# TYPE (\S+) \S+$/gm)]
    .map((match) => match[1] as string)
    .filter((name) => sampled.has(name));
  const findings = families
    .filter((name) => name.includes(":"))
    .map((name) => `${name} metric names should not contain ':'`);
  return findings.sort();
}

test("metrics count a scripted sequence of requests exactly and pass promtool's checks", async (t) => {
  const gate = new StepGate();
  const server = await startFakeServer({ beforeStep: gate.beforeStep }, { maxNumWaiting: 64 });
  t.after(async () => {
    gate.releaseAll();
    await server.app.close();
  });
  const model = FAKE_MODEL_ID;
  // 1. A plain completion: BOS + "hello" = 6 prompt tokens, 5 generated.
  assert.equal(
    (await postJson(server.app, "/v1/completions", { model, prompt: "hello", max_tokens: 5, temperature: 0 }))
      .statusCode,
    200,
  );
  // 2. A stream with n: 2: 2 × 6 prompt tokens, 2 × 3 generated.
  const stream = await postJson(server.app, "/v1/completions", {
    model,
    prompt: "hello",
    max_tokens: 3,
    n: 2,
    stream: true,
    seed: 1,
  });
  assert.equal(parseSse(stream.body).at(-1), "[DONE]");
  // 3. A bad request never reaches the engine.
  assert.equal(
    (await postJson(server.app, "/v1/completions", { model, prompt: "hello", temperature: 9 })).statusCode,
    400,
  );
  // 4. A stream whose client leaves after its first token (steps so far: 5 + 3 = 8; it is held at step 9).
  const hold = gate.holdAt(9);
  const abandoned = await server.app.inject({
    method: "POST",
    url: "/v1/completions",
    headers: { "content-type": "application/json" },
    payload: JSON.stringify({ model, prompt: "hello", max_tokens: 50, temperature: 0, stream: true }),
    payloadAsStream: true,
  });
  await hold.reached;
  const closed = once(abandoned.raw.res, "close");
  abandoned.raw.res.destroy();
  await closed;
  hold.release();
  // 5. One more request; it starts only after the abort was applied.
  await postJson(server.app, "/v1/completions", { model, prompt: "hello", max_tokens: 1, temperature: 0 });

  const response = await server.app.inject({ method: "GET", url: "/metrics" });
  assert.equal(response.statusCode, 200);
  assert.match(String(response.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  const samples = parseExposition(response.body);
  const value = (series: string): number | undefined => samples.get(series);

  // Requests 1, 2 (two choices), 4 and 5 reached the engine: 5 scheduler requests of 6 prompt tokens each.
  const numPromptTokens = 5 * 6;
  // Generated: 5 + 2 × 3 + 2 (request 4: steps 8 and 9) + 1.
  const numGenerated = 5 + 6 + 2 + 1;
  assert.equal(value(`vllm:prompt_tokens_total{${LABELS}}`), numPromptTokens);
  assert.equal(value(`vllm:generation_tokens_total{${LABELS}}`), numGenerated);
  assert.equal(value("llamacpp:prompt_tokens_total"), numPromptTokens);
  assert.equal(value("llamacpp:tokens_predicted_total"), numGenerated);
  assert.equal(value(`vllm:request_success_total{${LABELS},finished_reason="length"}`), 4);
  assert.equal(value(`vllm:request_success_total{${LABELS},finished_reason="abort"}`), 1);
  assert.equal(value(`vllm:request_success_total{${LABELS},finished_reason="stop"}`), 0);
  assert.equal(value(`vllm:request_success_total{${LABELS},finished_reason="error"}`), 0);
  for (const histogram of [
    "e2e_request_latency_seconds",
    "request_queue_time_seconds",
    "request_prompt_tokens",
    "request_generation_tokens",
    "request_params_max_tokens",
  ]) {
    assert.equal(value(`vllm:${histogram}_count{${LABELS}}`), 5, histogram);
  }
  assert.equal(value(`vllm:request_prompt_tokens_sum{${LABELS}}`), numPromptTokens);
  assert.equal(value(`vllm:request_generation_tokens_sum{${LABELS}}`), numGenerated);
  assert.equal(value(`vllm:request_params_max_tokens_sum{${LABELS}}`), 5 + 3 + 3 + 50 + 1);
  assert.equal(value(`vllm:time_to_first_token_seconds_count{${LABELS}}`), 5, "every request got a first token");
  // Inter-token intervals: one fewer than the tokens of each request.
  assert.equal(value(`vllm:inter_token_latency_seconds_count{${LABELS}}`), 4 + 2 + 2 + 1 + 0);
  assert.equal(
    value(`vllm:request_params_n_count{${LABELS}}`),
    4,
    "one observation per admitted HTTP generation request",
  );
  assert.equal(value(`vllm:request_params_n_sum{${LABELS}}`), 1 + 2 + 1 + 1);
  const numSteps = server.engine.steps.length;
  assert.equal(value("llamacpp:n_decode_total"), numSteps);
  assert.equal(value(`pagoda_iteration_tokens_count{${LABELS}}`), numSteps);
  assert.equal(value(`pagoda_iteration_tokens_sum{${LABELS}}`), numPromptTokens + numGenerated);
  assert.equal(value(`vllm:num_requests_running{${LABELS}}`), 0);
  assert.equal(value(`vllm:num_requests_waiting{${LABELS}}`), 0);
  assert.equal(value(`vllm:kv_cache_usage_perc{${LABELS}}`), 0);
  assert.equal(value(`vllm:num_preemptions_total{${LABELS}}`), 0);
  assert.equal(value(`vllm:spec_decode_num_drafts_total{${LABELS}}`), 0, "exists with 0 without a draft model");
  assert.equal(value('pagoda_http_responses_total{code="200"}'), 3, "the abandoned stream never completed a response");
  assert.equal(value('pagoda_http_responses_total{code="400"}'), 1);
  assert.ok((value('pagoda_memory_bytes{category="rss"}') ?? 0) > 0);

  // prom-client's nodejs_active_*_total gauges are left out (promtool rejects _total on a gauge); the per-type
  // families they summed remain.
  for (const name of ["handles", "requests", "resources"]) {
    assert.match(response.body, new RegExp(`^# TYPE nodejs_active_${name} gauge$`, "m"));
    assert.doesNotMatch(response.body, new RegExp(`^nodejs_active_${name}_total`, "m"));
  }

  const findings = promtoolFindings(response.body);
  if (findings === null) {
    t.diagnostic("PROMTOOL NOT INSTALLED: the exposition was not linted (CI installs Debian's prometheus package)");
    return;
  }
  const expected = expectedFindings(response.body);
  assert.ok(expected.length > 30, "the vLLM and llama-server families are all in the exposition");
  assert.deepEqual(findings.sort(), expected);
});

test("cumulative KV and speculation counts reach vLLM's and llama-server's counters as increments", async () => {
  const registry = new Registry();
  const metrics = new ServerMetrics(registry);
  metrics.attach({
    modelName: "m",
    pooledModels: [],
    numWaitingPooledInputs: () => 0,
    contextSize: 64,
    numSequences: 2,
    numKvCells: 128,
    kvBlockSize: 16,
    numKvBlocks: 8,
    isPrefixCaching: true,
    numRunning: () => 1,
    numWaiting: () => 0,
    numKvTokens: () => 32,
    kvUsage: () => 0.25,
    kvBlocks: () => ({ used: 2, cached: 1 }),
  });
  const kvCache = (prefixHitTokens: number, numPreemptions: number): KvCacheState => ({
    numBlocks: 8,
    blockSize: 16,
    numUsedBlocks: 2,
    numCachedBlocks: 1,
    usage: 0.25,
    prefixQueriedTokens: 2 * prefixHitTokens,
    prefixHitTokens,
    numPreemptions,
    numSavedPrefixes: 0,
    savedPrefixBytes: 0,
  });
  const step = { numTokens: 3, numPromptTokens: 2, numGeneratedTokens: 1, numSequences: 2 };
  const counts = { numRunning: 1, numWaiting: 0, durationMs: 4 };
  const sampling = (sampleMs: number, numGrammarFallbacks: number) => ({
    sampleMs,
    numGrammarFallbacks,
    numTriggerFailures: numGrammarFallbacks > 4 ? 2 : 0,
    numPickedInDecode: 0,
  });
  metrics.observeStep({
    ...step,
    ...counts,
    kvCache: kvCache(16, 1),
    spec: spec(2, 6, 3, [2, 1], 1),
    sampling: sampling(1, 4),
  });
  // A step without speculation keeps the totals, so the next one counts from them.
  metrics.observeStep({ ...step, ...counts, kvCache: kvCache(16, 1), spec: null, sampling: sampling(3, 4) });
  metrics.observeStep({
    ...step,
    ...counts,
    kvCache: kvCache(48, 1),
    spec: spec(3, 10, 6, [3, 2, 1], 3),
    sampling: sampling(6, 11),
  });
  const samples = parseExposition(await registry.metrics());
  const labels = 'model_name="m",engine="0"';
  assert.equal(samples.get(`vllm:prefix_cache_hits_total{${labels}}`), 48);
  assert.equal(samples.get("pagoda_grammar_trigger_failures_total"), 2);
  assert.equal(samples.get(`vllm:prefix_cache_queries_total{${labels}}`), 96);
  assert.equal(samples.get(`vllm:num_preemptions_total{${labels}}`), 1);
  assert.equal(samples.get(`vllm:spec_decode_num_drafts_total{${labels}}`), 3);
  assert.equal(samples.get(`vllm:spec_decode_num_draft_tokens_total{${labels}}`), 10);
  assert.equal(samples.get(`vllm:spec_decode_num_accepted_tokens_total{${labels}}`), 6);
  assert.equal(samples.get(`vllm:spec_decode_num_accepted_tokens_per_pos_total{${labels},position="0"}`), 3);
  assert.equal(samples.get(`vllm:spec_decode_num_accepted_tokens_per_pos_total{${labels},position="2"}`), 1);
  assert.equal(samples.get("llamacpp:spec_decode_num_draft_tokens_total"), 10);
  assert.equal(samples.get("llamacpp:spec_decode_num_accepted_tokens_total"), 6);
  assert.equal(samples.get("llamacpp:n_decode_total"), 3);
  assert.equal(samples.get("llamacpp:n_busy_slots_per_decode"), 2);
  assert.equal(samples.get("pagoda_engine_step_seconds_count"), 3);
  assert.equal(samples.get('pagoda_kv_blocks{state="free"}'), 5);
  assert.equal(samples.get("pagoda_spec_draft_failures_total"), 3);
  assert.equal(samples.get("pagoda_grammar_fallbacks_total"), 11);
  assert.equal(samples.get("pagoda_step_sampling_seconds_count"), 3);
  assert.equal(samples.get("pagoda_step_sampling_seconds_sum"), 0.006);
  metrics.dispose();
});

function spec(
  numDrafts: number,
  numDraftTokens: number,
  numAcceptedTokens: number,
  perPosition: number[],
  numDraftFailures = 0,
): SpecStats {
  return { numDrafts, numDraftTokens, numAcceptedTokens, acceptedPerPosition: perPosition, numDraftFailures };
}
