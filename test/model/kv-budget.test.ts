import assert from "node:assert/strict";
import { test } from "node:test";
import { startModelServer } from "../helpers/model-server.ts";

test("--kv-cache-memory sizes the shared KV pool so llama.cpp's KV cache stays within the budget", async () => {
  const budget = 3_000_000;
  const server = await startModelServer(["--parallel", "8", "--ctx-size", "2048", "--kv-cache-memory", String(budget)]);
  try {
    const { info } = server.runtime.engine;
    assert.equal(info.isKvShared, true);
    assert.equal(info.kvCacheTokens, 4608, "3,000,000 B / 640 B per token = 4,687 cells, rounded down to 256s");
    assert.equal(info.contextSize, 2048, "one request may still use its whole context from the pool");
    const plan = (await (await fetch(`${server.baseUrl}/v1/plan`)).json()) as {
      kv_bytes: number;
      num_kv_cells: number;
    };
    assert.equal(plan.num_kv_cells, 4608);
    assert.equal(plan.kv_bytes, 4608 * 640);
    assert.ok(plan.kv_bytes <= budget);
  } finally {
    await server.close();
  }
});
