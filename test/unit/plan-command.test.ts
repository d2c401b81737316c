import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeSyntheticLlama, writeSyntheticModel } from "../../src/gguf/synthetic-model.ts";
import { runPlanCommand } from "../../src/plan/plan-command.ts";

let dir: string;
let modelPath: string;
let bertPath: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-plan-command-"));
  modelPath = join(dir, "tiny.gguf");
  // vocab 512, dim 128, 2 layers, 4 heads / 2 KV heads of 32: 2 layers × (K + V) × 64 values × 2 B = 512 KV bytes per token.
  await writeSyntheticLlama(modelPath, { vocabSize: 512, embeddingLength: 128, blockCount: 2, feedForwardLength: 128 });
  bertPath = join(dir, "encoder.gguf");
  await writeSyntheticModel(bertPath, { architecture: "bert", pooling: "mean", contextLength: 512 });
});

after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runPlanCommand(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, stdout, stderr };
}

test("the report lists weights by type, parameters, KV per token and each buffer with exact bytes", async () => {
  const { code, stdout, stderr } = await run([modelPath]);
  assert.equal(code, 0, stderr);
  assert.equal(stderr, "");
  assert.match(stdout, /^tiny\.gguf \(llama\)\n/);
  assert.match(
    stdout,
    /context: 8 sequences, KV one shared pool of 16,384 cells, batch 512, ubatch 512, KV type f16, flash attention on/,
  );
  assert.match(stdout, /\n {2}F16 +\d+ +[\d,]+ +[\d.]+ [KM]iB +[\d,]+\n/);
  assert.match(stdout, /\n {2}F32 +\d+ +[\d,]+ /);
  assert.match(stdout, /parameters: [\d,]+ total, all active/);
  assert.match(stdout, /KV per token +512 B/);
  assert.match(stdout, /KV cache +8\.00 MiB +8,388,608\n/);
  assert.match(stdout, /output \(logits\) +16\.00 KiB +16,384\n/);
  assert.match(stdout, /compute +[\d.]+ MiB +[\d,]+\n/);
  assert.match(stdout, /total +[\d.]+ MiB +[\d,]+\n/);
});

test("without flags the plan is the server's default context: one shared pool of every sequence's context", async () => {
  const { code, stdout } = await run([modelPath, "--json"]);
  assert.equal(code, 0);
  const plan = JSON.parse(stdout) as { kv_bytes: number; num_kv_cells: number; context: Record<string, unknown> };
  assert.deepEqual(plan.context, {
    num_sequences: 8,
    is_kv_unified: true,
    num_kv_streams: 1,
    kv_cells_per_stream: 8 * 2048,
    swa_kv_cells_per_stream: 8 * 2048,
    context_tokens: 8 * 2048,
    batch_size: 512,
    ubatch_size: 512,
    kv_type: "f16",
    flash_attention: true,
  });
  assert.equal(plan.num_kv_cells, 8 * 2048);
  assert.equal(plan.kv_bytes, 8 * 2048 * 512);
});

test("--kv-layout slabs plans one slab of ctx-size cells per sequence, without flash attention", async () => {
  const { code, stdout } = await run([modelPath, "--json", "--kv-layout", "slabs"]);
  assert.equal(code, 0);
  const plan = JSON.parse(stdout) as { kv_bytes: number; context: Record<string, unknown> };
  assert.equal(plan.context.is_kv_unified, false);
  assert.equal(plan.context.num_kv_streams, 8);
  assert.equal(plan.context.kv_cells_per_stream, 2048);
  assert.equal(plan.context.flash_attention, false);
  assert.equal(plan.kv_bytes, 8 * 2048 * 512, "the same cells as the default pool, in eight slabs");
});

test("--json prints the plan with every size in bytes", async () => {
  const { code, stdout } = await run([
    modelPath,
    "--json",
    "--kv-layout",
    "slabs",
    "--ctx-size",
    "1000",
    "--parallel",
    "3",
    "--kv-type",
    "q8_0",
  ]);
  assert.equal(code, 0);
  const plan = JSON.parse(stdout) as Record<string, unknown> & { context: Record<string, unknown> };
  assert.equal(plan.architecture, "llama");
  // q8_0 packs 32 values into 34 bytes: a 64-value row is 68 bytes.
  assert.equal(plan.kv_bytes_per_token, 2 * 2 * 68);
  assert.equal(plan.context.kv_cells_per_stream, 1024);
  assert.equal(plan.context.num_kv_streams, 3);
  assert.equal(plan.context.kv_type, "q8_0");
  assert.equal(plan.context.flash_attention, true);
  assert.equal(plan.kv_bytes, 3 * 1024 * 272);
  assert.equal(plan.output_bytes, 3 * 512 * 4);
  for (const key of ["weights_bytes", "compute_bytes", "total_bytes", "num_parameters", "num_active_parameters"])
    assert.equal(typeof plan[key], "number", key);
  assert.deepEqual(plan.warnings, []);
});

test("--kv-cache-tokens sizes the shared pool and --batch-size bounds the micro-batch", async () => {
  const { code, stdout } = await run([modelPath, "--json", "--kv-cache-tokens", "3000", "--batch-size", "64"]);
  assert.equal(code, 0);
  const plan = JSON.parse(stdout) as { kv_bytes: number; context: Record<string, unknown> };
  assert.equal(plan.context.is_kv_unified, true);
  assert.equal(plan.context.context_tokens, 3072);
  assert.equal(plan.context.ubatch_size, 64);
  assert.equal(plan.kv_bytes, 3072 * 512);
});

test("bad arguments print a message on stderr and exit with code 2", async () => {
  const cases: [string[], RegExp][] = [
    [[], /missing the GGUF file/],
    [[modelPath, "other.gguf"], /expected one GGUF file/],
    [[modelPath, "--ctx-size", "0"], /--ctx-size must be a positive integer/],
    [[modelPath, "--parallel", "two"], /--parallel must be a positive integer/],
    [[modelPath, "--kv-type", "q5_0"], /--kv-type must be one of f16, q8_0, q4_0, f32/],
    [[modelPath, "--flash-attn", "maybe"], /--flash-attn must be one of auto, on, off/],
    [[modelPath, "--kv-layout", "paged"], /--kv-layout must be one of shared, slabs/],
    [[modelPath, "--kv-layout", "slabs", "--kv-cache-tokens", "4096"], /--kv-cache-tokens sizes the shared pool/],
    [[modelPath, "--kv-type", "q4_0", "--flash-attn", "off"], /needs flash attention/],
    [[modelPath, "--bogus"], /Unknown option '--bogus'/],
  ];
  for (const [argv, message] of cases) {
    const { code, stdout, stderr } = await run(argv);
    assert.equal(code, 2, argv.join(" "));
    assert.equal(stdout, "");
    assert.match(stderr, message);
  }
});

test("a file that is missing or not a GGUF exits with code 1", async () => {
  const missing = await run([join(dir, "missing.gguf")]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read .*missing\.gguf/);

  const notGguf = join(dir, "notes.txt");
  await writeFile(notGguf, "plain text, no header");
  const wrong = await run([notGguf]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /not a GGUF file/);
});

test("--help prints the usage and exits with code 0", async () => {
  const { code, stdout } = await run(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /^usage: pagoda plan <model\.gguf>/);
});

test("models served beside the generator are planned with their pooling context, and the process total sums all", async () => {
  const { code, stdout, stderr } = await run([
    modelPath,
    "--embedding-model",
    bertPath,
    "--rerank-model",
    `named=${modelPath}`,
    "--embedding-parallel",
    "4",
    "--json",
  ]);
  assert.equal(code, 0, stderr);
  const plan = JSON.parse(stdout);
  const [encoder, reranker] = plan.pooled_models;
  assert.deepEqual(
    [encoder.role, encoder.model_path, reranker.role, reranker.model_path],
    ["embedding", bertPath, "rerank", modelPath],
  );
  // llama.cpp gives a BERT encoder no KV cache; the context is its training context (512), 4 inputs per decode.
  assert.equal(encoder.architecture, "bert");
  assert.equal(encoder.kv_bytes, 0);
  assert.equal(encoder.context.num_sequences, 4);
  assert.equal(encoder.context.batch_size, 512);
  // A decoder pooled as a reranker keeps its KV: 4 slabs of the server's 2,048-token context.
  assert.equal(reranker.kv_bytes, 4 * 2048 * 512);
  // The process total adds the generator's own embedding context (4 slabs of its 2,048 cells, weights shared).
  assert.ok(plan.embedding_context_bytes >= 4 * 2048 * 512);
  assert.equal(
    plan.process_total_max_bytes,
    plan.total_max_bytes + encoder.total_max_bytes + reranker.total_max_bytes + plan.embedding_context_bytes,
  );
  const text = await run([modelPath, "--embedding-model", bertPath]);
  assert.match(text.stdout, /encoder\.gguf, served beside it \(--embedding-model\) \(bert\)/);
  assert.match(text.stdout, /its own embedding context, created on the first \/v1\/embeddings request to it: /);
  assert.match(text.stdout, /the whole process at most \(all 2 models and that context\): /);
});
