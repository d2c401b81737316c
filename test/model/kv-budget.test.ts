import { test } from "node:test";
import assert from "node:assert/strict";
import { startModelServer } from "../helpers/model-server.ts";

test("--kv-cache-memory sizes the context so llama.cpp's KV cache stays within the budget", async () => {
  const budget = 3_000_000;
  const server = await startModelServer(["--parallel", "8", "--ctx-size", "2048", "--kv-cache-memory", String(budget)]);
  try {
    assert.equal(server.runtime.engine.info.contextSize, 512, "3,000,000 / (640 B × 8) = 585 tokens, rounded down to 512");
    const plan = (await (await fetch(`${server.baseUrl}/v1/plan`)).json()) as { kv_bytes: number; num_kv_cells: number };
    assert.equal(plan.num_kv_cells, 8 * 512);
    assert.equal(plan.kv_bytes, 8 * 512 * 640);
    assert.ok(plan.kv_bytes <= budget);
  } finally {
    await server.close();
  }
});
