/**
 * Every sequence of a step gets the token sampled from its own logits, also when llama.cpp's split of the batch
 * puts the outputs out of order. A 32k vocabulary makes llama.cpp's lazy output reorder slow enough that samplers
 * racing on it mixed up sequences in every round here before the engine serialized the first read.
 */

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { greedySampling, type SamplingParams, type TokenId } from "../../src/engine/engine.ts";
import { LlamaEngine } from "../../src/engine/llama-engine.ts";
import { writeSyntheticLlama } from "../../src/gguf/synthetic-model.ts";
import { asTokenIds } from "../helpers/ids.ts";
import { generateStepwise } from "../helpers/stepwise-generation.ts";

const NUM_SEQUENCES = 16;
const NUM_GENERATED = 24;
const GREEDY: SamplingParams = greedySampling(1);

let dir: string;
let engine: LlamaEngine;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-step-outputs-"));
  const modelPath = join(dir, "wide-vocab.gguf");
  await writeSyntheticLlama(modelPath, {
    vocabSize: 32000,
    embeddingLength: 64,
    blockCount: 2,
    headCount: 4,
    headCountKv: 4,
    feedForwardLength: 128,
    tensorType: "F32",
    seed: 3,
  });
  // Slabs: llama.cpp splits such a batch into several ubatches and reorders the outputs; the shared pool does not.
  engine = await LlamaEngine.load({
    modelPath,
    threads: 1,
    numSequences: NUM_SEQUENCES,
    contextSize: 128,
    batchSize: 512,
    gpu: "false",
    kvLayout: "slabs",
  });
});

after(async () => {
  await engine?.dispose();
  if (dir != null) await rm(dir, { recursive: true, force: true });
});

/** Even requests have longer prompts than the odd one joining beside them, so their outputs leave the split late. */
function promptOf(request: number): TokenId[] {
  return asTokenIds(
    Array.from({ length: 3 + request + (request % 2 === 0 ? 9 : 0) }, (_, k) => 300 + ((request * 37 + k * 11) % 500)),
  );
}

/** Greedy continuations of `requests`; together, two of them join per step while the earlier ones decode. */
async function generate(requests: readonly number[], sampling = GREEDY): Promise<Map<number, TokenId[]>> {
  const generated = await generateStepwise(engine, requests.map(promptOf), {
    numGenerated: NUM_GENERATED,
    sampling,
    joinPerStep: 2,
  });
  return new Map(requests.map((request, index) => [request, generated[index]!]));
}

test("greedy tokens of 16 sequences joining two per step equal each sequence's tokens alone, decoded on another thread", async () => {
  const requests = Array.from({ length: NUM_SEQUENCES }, (_, request) => request);
  const alone = new Map<number, TokenId[]>();
  const onLoopThreadBefore = engine.numDecodesOnLoopThread;
  for (const request of requests) alone.set(request, (await generate([request])).get(request)!);
  // One sequence's steps are short: the first of them at least decodes on the event loop's thread (later ones too
  // while they stay under a millisecond), those of 16 sequences on the thread pool.
  assert.ok(engine.numDecodesOnLoopThread > onLoopThreadBefore, "short steps decoded on the event loop's thread");
  assert.equal(
    new Set([...alone.values()].map((tokens) => tokens.join())).size,
    NUM_SEQUENCES,
    "different prompts continue differently",
  );

  for (let round = 0; round < 3; round++) {
    const together = await generate(requests);
    const mixedUp = requests.filter((request) => together.get(request)!.join() !== alone.get(request)!.join());
    assert.deepEqual(mixedUp, [], `round ${round}: requests whose tokens changed in company`);
  }
});

test("greedy tokens picked in the decode's own native task equal the native sampler's, alone and among 16", async () => {
  const requests = Array.from({ length: NUM_SEQUENCES }, (_, request) => request);
  const pickedBefore = engine.samplingCounters().numPickedInDecode;
  const picked = await generate(requests);
  assert.ok(
    engine.samplingCounters().numPickedInDecode - pickedBefore >= NUM_SEQUENCES * NUM_GENERATED,
    "the decode picked every token",
  );
  // Asking for logprobs takes the sampler's path.
  const pickedBySampler = engine.samplingCounters().numPickedInDecode;
  const sampled = await generate(requests, { ...GREEDY, topLogprobs: 1 });
  assert.equal(engine.samplingCounters().numPickedInDecode, pickedBySampler, "the sampler drew every token");
  for (const request of requests) assert.deepEqual(picked.get(request), sampled.get(request), `request ${request}`);
  const mixed = await generate([0, 1]);
  assert.deepEqual(mixed.get(0), sampled.get(0));
});
