/**
 * Multi-threaded decodes all run on the addon's one decode thread, whichever libuv pool thread (or the event loop's,
 * for short steps) asks for them: a llama.cpp built with OpenMP starts a team per calling thread, and several teams on
 * few cores made libgomp sleep and wake its threads at every parallel region (ggml's own thread pool, which the
 * default install and the prebuilt use, starts its workers per decode and ends them after). Checked here through what a user
 * sees (greedy tokens alone and among others are the same) and through what the fix is (the decodes add two threads
 * to the process; linux only, from /proc).
 */

import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { greedySampling, type TokenId } from "../../src/engine/engine.ts";
import { LlamaEngine } from "../../src/engine/llama-engine.ts";
import { writeSyntheticLlama } from "../../src/gguf/synthetic-model.ts";
import { asTokenIds } from "../helpers/ids.ts";
import { generateStepwise } from "../helpers/stepwise-generation.ts";

const NUM_SEQUENCES = 8;
const NUM_GENERATED = 16;

let dir: string;
let engine: LlamaEngine;
/** The process's threads once the model is loaded (libuv's pool threads included), before any decode. */
let threadsBeforeDecodes = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-decode-thread-"));
  const modelPath = join(dir, "two-threads.gguf");
  await writeSyntheticLlama(modelPath, {
    vocabSize: 2048,
    embeddingLength: 256,
    blockCount: 4,
    headCount: 4,
    headCountKv: 4,
    feedForwardLength: 512,
    tensorType: "F32",
    seed: 5,
  });
  engine = await LlamaEngine.load({
    modelPath,
    threads: 2,
    numSequences: NUM_SEQUENCES,
    contextSize: 1024,
    batchSize: 256,
    gpu: "false",
  });
  if (process.platform === "linux") threadsBeforeDecodes = numThreads();
});

after(async () => {
  await engine?.dispose();
  if (dir != null) await rm(dir, { recursive: true, force: true });
});

function promptOf(request: number): TokenId[] {
  return asTokenIds(Array.from({ length: 5 + request * 3 }, (_, k) => 100 + ((request * 53 + k * 17) % 1900)));
}

/** Greedy continuations of `requests`, decoded together in one batch per step. */
async function generate(requests: readonly number[]): Promise<Map<number, TokenId[]>> {
  const generated = await generateStepwise(engine, requests.map(promptOf), {
    numGenerated: NUM_GENERATED,
    sampling: greedySampling(1),
  });
  return new Map(requests.map((request, index) => [request, generated[index]!]));
}

function numThreads(): number {
  return readdirSync("/proc/self/task").length;
}

test("two-thread decodes: greedy tokens alone equal those among 8, and they run on one decode thread", async () => {
  const requests = Array.from({ length: NUM_SEQUENCES }, (_, request) => request);
  const alone = new Map<number, TokenId[]>();
  for (const request of requests) alone.set(request, (await generate([request])).get(request)!);
  assert.equal(new Set([...alone.values()].map((tokens) => tokens.join())).size, NUM_SEQUENCES);
  for (let round = 0; round < 3; round++) {
    const together = await generate(requests);
    const changed = requests.filter((request) => together.get(request)!.join() !== alone.get(request)!.join());
    assert.deepEqual(changed, [], `round ${round}: requests whose tokens changed in company`);
  }

  if (process.platform === "linux") {
    // Hundreds of decodes, from the pool's threads and the event loop's, added the decode thread and at most its
    // one OpenMP worker; a team per calling thread added a worker for each of them (5 with libuv's 4 pool threads).
    assert.ok(
      numThreads() - threadsBeforeDecodes <= 2,
      `threads of the process: ${threadsBeforeDecodes} before the decodes, ${numThreads()} after`,
    );
  }
});
