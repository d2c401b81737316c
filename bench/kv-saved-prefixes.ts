/**
 * What cached prompts in the KV pool cost a decode step, on the engine alone (no scheduler, no HTTP): 16 sequences
 * decode 100 steps (median step time), then 28 distinct 1,000-token prompts are prefilled and either dropped
 * ("control" skips them), saved to host memory and dropped ("saved", what pagoda does), or kept in the pool
 * ("resident", what pagoda did before), then two more decode runs.
 *
 *   npx tsx bench/kv-saved-prefixes.ts saved|resident|control [model.gguf]
 */

import { greedySampling, type SamplingParams, type SequenceId, type TokenId } from "../src/engine/engine.ts";
import { LlamaEngine } from "../src/engine/llama-engine.ts";

const mode = process.argv[2] ?? "control";
const engine = await LlamaEngine.load({
  modelPath: process.argv[3] ?? "../shared/models/stories260K.gguf",
  threads: 1,
  numSequences: 64,
  contextSize: 2048,
  kvCacheTokens: 32768,
  batchSize: 512,
  gpu: "false",
});
const greedy: SamplingParams = greedySampling(1);
const rnd = (n: number, s: number) =>
  Array.from({ length: n }, (_, i) => (3 + ((i * 7919 + s * 104729) % 500)) as TokenId);
async function decodeRun(seed: number): Promise<number> {
  const ds: { id: SequenceId; pos: number; last: TokenId }[] = [];
  for (let i = 0; i < 16; i++) {
    const id = engine.acquireSequence(greedy)!;
    const out = await engine.step([
      { sequenceId: id, startPos: 0, tokens: rnd(32, seed * 100 + i), shouldSample: true },
    ]);
    ds.push({ id, pos: 32, last: out[0]!.token! });
  }
  const times: number[] = [];
  for (let s = 0; s < 100; s++) {
    const t = performance.now();
    const outs = await engine.step(
      ds.map((d) => ({ sequenceId: d.id, startPos: d.pos, tokens: [d.last], shouldSample: true })),
    );
    times.push(performance.now() - t);
    outs.forEach((o, i) => {
      ds[i]!.pos++;
      ds[i]!.last = o.token!;
    });
  }
  for (const d of ds) engine.releaseSequence(d.id);
  times.sort((a, b) => a - b);
  return times[50]!;
}
console.log(mode, "run1", (await decodeRun(1)).toFixed(2));
const saved = [];
if (mode !== "control") {
  for (let p = 0; p < 28; p += 4) {
    const ids = [0, 1, 2, 3].map(() => engine.acquireSequence(greedy)!);
    for (let s = 0; s < 1000; s += 128)
      await engine.step(
        ids.map((id, k) => ({
          sequenceId: id,
          startPos: s,
          tokens: rnd(1000, 100 + p + k).slice(s, s + 128),
          shouldSample: false,
        })),
      );
    for (const id of ids) {
      if (mode === "saved") saved.push(engine.saveCells(id, 992));
      if (mode === "resident") engine.truncateSequence(id, 992);
      else engine.releaseSequence(id);
    }
  }
}
console.log(mode, "run2", (await decodeRun(2)).toFixed(2));
console.log(mode, "run3", (await decodeRun(3)).toFixed(2));
await engine.dispose();
