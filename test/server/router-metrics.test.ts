/**
 * /metrics/router: the four gauges llm-d's endpoint picker reads (its `vllm` engine profile), cheap enough to
 * scrape every 50 ms, exactly as /metrics has them, and public or private with /metrics.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildApp } from "../../src/server/app.ts";
import { ServingState } from "../../src/server/serving-state.ts";
import { FAKE_MODEL_ID, startFakeServer } from "../helpers/fake-server.ts";
import { postJson } from "./support.ts";

const ROUTER_FAMILIES = [
  "vllm:num_requests_waiting",
  "vllm:num_requests_running",
  "vllm:kv_cache_usage_perc",
  "vllm:cache_config_info",
];

/** The lines of an exposition that belong to `family` (HELP, TYPE and samples). */
function linesOf(exposition: string, family: string): string[] {
  return exposition
    .split("\n")
    .filter(
      (line) =>
        line.startsWith(`${family}{`) || line.startsWith(`# HELP ${family} `) || line.startsWith(`# TYPE ${family} `),
    );
}

test("/metrics/router serves the router's four gauges exactly as /metrics has them, and nothing else", async (t) => {
  const server = await startFakeServer();
  t.after(() => server.app.close());
  await postJson(server.app, "/v1/completions", { model: FAKE_MODEL_ID, prompt: "hello", max_tokens: 3 });
  const full = (await server.app.inject({ method: "GET", url: "/metrics" })).body;
  const router = await server.app.inject({ method: "GET", url: "/metrics/router" });
  assert.equal(router.statusCode, 200);
  assert.match(String(router.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  const families = new Set(
    router.body
      .split("\n")
      .filter((line) => line.startsWith("# TYPE "))
      .map((line) => line.split(" ")[2]),
  );
  assert.deepEqual([...families].sort(), [...ROUTER_FAMILIES].sort());
  for (const family of ROUTER_FAMILIES) {
    const lines = linesOf(router.body, family);
    assert.ok(lines.length >= 3, `${family} has HELP, TYPE and a sample`);
    assert.deepEqual(lines, linesOf(full, family), family);
  }
  assert.ok(router.body.length * 10 < full.length, "a small fraction of the whole exposition");
});

test("/metrics/router is public like /metrics, and needs a key with metrics auth", async (t) => {
  const open = await buildApp({ serving: new ServingState(), apiKeys: ["key"] });
  t.after(() => open.close());
  const loading = await open.inject({ method: "GET", url: "/metrics/router" });
  assert.equal(loading.statusCode, 200);
  assert.equal(loading.body, "\n", "no gauges before the model is loaded");
  const closed = await buildApp({ serving: new ServingState(), apiKeys: ["key"], isMetricsAuthRequired: true });
  t.after(() => closed.close());
  assert.equal((await closed.inject({ method: "GET", url: "/metrics/router" })).statusCode, 401);
  const authorized = await closed.inject({
    method: "GET",
    url: "/metrics/router",
    headers: { authorization: "Bearer key" },
  });
  assert.equal(authorized.statusCode, 200);
});
