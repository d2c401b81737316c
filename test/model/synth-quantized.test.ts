/**
 * `pagoda synth --type q4_k_m|q6_k` through llama.cpp's own quantiser (the patched addon's `quantizeModel`): the
 * files hold the K-quant tensors llama.cpp's mix decides, load in the engine and produce a token. Dimensions are
 * multiples of 256, so no tensor needs llama.cpp's fallback types.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { greedySampling } from "../../src/engine/engine.ts";
import { LlamaEngine } from "../../src/engine/llama-engine.ts";
import { quantizeModel } from "../../src/engine/quantize-model.ts";
import { GGML_TYPE_ID } from "../../src/gguf/ggml-types.ts";
import { readGgufHeader } from "../../src/gguf/gguf-reader.ts";
import { runSynthCommand } from "../../src/gguf/synth-command.ts";
import type { ModelQuantizer } from "../../src/gguf/write-quantized-model.ts";
import { asTokenIds } from "../helpers/ids.ts";

const SHAPE = ["--dim", "256", "--layers", "2", "--vocab", "512", "--ffn", "512"];
/** llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M and LLAMA_FTYPE_MOSTLY_Q6_K, which it writes to general.file_type. */
const FILE_TYPE = { Q4_K_M: 15, Q6_K: 18 };

const quantize: ModelQuantizer = (inputPath, outputPath, fileType) =>
  quantizeModel(inputPath, outputPath, { fileType, threads: 1 });

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-synth-quantized-"));
});

after(async () => {
  if (dir != null) await rm(dir, { recursive: true, force: true });
});

async function synthesize(fileName: string, type: string): Promise<{ path: string; stdout: string }> {
  const path = join(dir, fileName);
  let stdout = "";
  let stderr = "";
  const code = await runSynthCommand(
    [...SHAPE, "--type", type, "--out", path],
    {
      stdout: (text) => {
        stdout += text;
      },
      stderr: (text) => {
        stderr += text;
      },
    },
    quantize,
  );
  assert.equal(code, 0, stderr);
  return { path, stdout };
}

async function typesOf(path: string): Promise<{ fileType: unknown; types: Map<string, number> }> {
  const header = await readGgufHeader(path);
  const fileType = header.metadata.find((entry) => entry.key === "general.file_type")?.value;
  return { fileType, types: new Map(header.tensors.map((tensor) => [tensor.name, tensor.ggmlType])) };
}

/** Loads the model in the engine, feeds a short prompt and returns the greedy token after it. */
async function oneToken(path: string): Promise<number> {
  const engine = await LlamaEngine.load({
    modelPath: path,
    threads: 1,
    numSequences: 1,
    contextSize: 64,
    batchSize: 64,
    gpu: "false",
  });
  try {
    const sequenceId = engine.acquireSequence(greedySampling(1));
    assert.ok(sequenceId !== null);
    const [output] = await engine.step([
      { sequenceId, startPos: 0, tokens: asTokenIds([1, 300, 301, 302]), shouldSample: true },
    ]);
    engine.releaseSequence(sequenceId);
    assert.ok(output?.token != null, "the step sampled a token");
    return output.token;
  } finally {
    await engine.dispose();
  }
}

test("a q4_k_m synthetic model holds llama.cpp's Q4_K_M mix, loads and produces a token", async () => {
  const { path, stdout } = await synthesize("q4_k_m.gguf", "q4_k_m");
  const { fileType, types } = await typesOf(path);
  assert.equal(fileType, FILE_TYPE.Q4_K_M);
  assert.equal(types.get("output.weight"), GGML_TYPE_ID.Q6_K, "Q4_K_M keeps the output head at Q6_K");
  assert.equal(types.get("token_embd.weight"), GGML_TYPE_ID.Q4_K);
  assert.equal(types.get("blk.0.attn_q.weight"), GGML_TYPE_ID.Q4_K);
  assert.equal(types.get("blk.0.attn_norm.weight"), GGML_TYPE_ID.F32);
  const used = new Set(types.values());
  assert.deepEqual([...used].sort(), [GGML_TYPE_ID.F32, GGML_TYPE_ID.Q4_K, GGML_TYPE_ID.Q6_K].sort());
  assert.match(stdout, /tensor types {2}(Q4_K|Q6_K|F32) ×\d+, (Q4_K|Q6_K|F32) ×\d+, (Q4_K|Q6_K|F32) ×\d+\n/);
  assert.ok((await oneToken(path)) >= 0);
});

test("a q6_k synthetic model holds Q6_K matrices and F32 norms, loads and produces a token", async () => {
  const { path } = await synthesize("q6_k.gguf", "q6_k");
  const { fileType, types } = await typesOf(path);
  assert.equal(fileType, FILE_TYPE.Q6_K);
  for (const [name, type] of types)
    assert.equal(type, name.endsWith("_norm.weight") ? GGML_TYPE_ID.F32 : GGML_TYPE_ID.Q6_K, name);
  assert.ok((await oneToken(path)) >= 0);
});

test("quantizing leaves only the requested files in the output's folder", async () => {
  assert.deepEqual((await readdir(dir)).sort(), ["q4_k_m.gguf", "q6_k.gguf"]);
});
