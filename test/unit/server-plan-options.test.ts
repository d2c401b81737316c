import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { loadConfig } from "../../src/config/load-config.ts";
import { ggufModelInfoFromHeader } from "../../src/plan/gguf-model-info.ts";
import { planMemory } from "../../src/plan/memory-plan.ts";
import { SERVER_CONTEXT_DEFAULTS, serverPlanOptions } from "../../src/plan/server-plan-options.ts";

test("the plan's defaults are those of a server started without flags", () => {
  const config = loadConfig({ argv: [], env: {}, cwd: tmpdir() });
  assert.deepEqual(SERVER_CONTEXT_DEFAULTS, {
    ctxSize: config.ctxSize,
    parallel: config.parallel,
    batchSize: config.batchSize,
    kvLayout: config.kvLayout,
    flashAttn: config.flashAttn,
    kvType: "f16",
  });
  assert.equal(config.kvCacheTokens, undefined, "the pool defaults to every sequence's context, as planned");
});

test("the shared layout plans a pool of ctx-size × parallel cells unless its size is given", () => {
  assert.deepEqual(serverPlanOptions(SERVER_CONTEXT_DEFAULTS), {
    ctxSize: 2048,
    parallel: 8,
    batchSize: 512,
    kvType: "f16",
    kvCacheTokens: 2048 * 8,
  });
  assert.equal(serverPlanOptions({ ...SERVER_CONTEXT_DEFAULTS, kvCacheTokens: 3000 }).kvCacheTokens, 3000);
});

test("the slab layout plans one context per sequence and has no pool to size", () => {
  const slabs = { ...SERVER_CONTEXT_DEFAULTS, kvLayout: "slabs" } as const;
  assert.equal(serverPlanOptions(slabs).kvCacheTokens, null);
  assert.throws(() => serverPlanOptions({ ...slabs, kvCacheTokens: 4096 }), RangeError);
});

test("flash attention auto is on for the shared pool and off for f16 slabs; on and off are kept", () => {
  const model = ggufModelInfoFromHeader({
    version: 3,
    alignment: 32,
    dataOffset: 0,
    metadata: [
      { key: "general.architecture", type: "string", value: "llama" },
      { key: "llama.block_count", type: "uint32", value: 2 },
      { key: "llama.embedding_length", type: "uint32", value: 64 },
      { key: "llama.attention.head_count", type: "uint32", value: 2 },
      { key: "llama.vocab_size", type: "uint32", value: 300 },
    ],
    tensors: [],
  });
  const flashAttention = (settings: Partial<typeof SERVER_CONTEXT_DEFAULTS>): boolean =>
    planMemory(model, serverPlanOptions({ ...SERVER_CONTEXT_DEFAULTS, ...settings })).context.flashAttention;
  assert.equal(flashAttention({}), true);
  assert.equal(flashAttention({ kvLayout: "slabs" }), false);
  assert.equal(flashAttention({ kvLayout: "slabs", kvType: "q8_0" }), true);
  assert.equal(flashAttention({ flashAttn: "off" }), false);
  assert.equal(flashAttention({ kvLayout: "slabs", flashAttn: "on" }), true);
});
