import assert from "node:assert/strict";
import { readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import { parseGgufHeader, readGgufHeader } from "../../src/gguf/gguf-reader.ts";
import { GgufWriter } from "../../src/gguf/gguf-writer.ts";
import { findModelShape } from "../../src/gguf/model-shapes.ts";
import { syntheticModelSpec } from "../../src/gguf/synthetic-model.ts";
import { synth, withTempDir } from "../helpers/gguf-files.ts";

test("--list prints every known shape with its dimensions", async () => {
  const { code, stdout, stderr } = await synth("--list");
  assert.equal(code, 0);
  assert.equal(stderr, "");
  for (const name of [
    "llama-3.1-8b",
    "llama-3.2-1b",
    "qwen2.5-7b",
    "qwen2.5-0.5b",
    "mistral-7b",
    "mixtral-8x7b",
    "tiny-moe",
  ])
    assert.match(stdout, new RegExp(`^${name.replace(/\./g, "\\.")} `, "m"));
  assert.match(stdout, /^mixtral-8x7b\s+llama\s+32000\s+4096\s+32\s+32\s+8\s+14336\s+8\/2\s+32768/m);
});

test("a dry run of a one-layer llama-3.1-8b prints its real tensor shapes and writes nothing", async () => {
  await withTempDir("synth-command", async (dir) => {
    const out = join(dir, "llama.gguf");
    const { code, stdout } = await synth(
      "--like",
      "llama-3.1-8b",
      "--layers",
      "1",
      "--type",
      "q4_0",
      "--out",
      out,
      "--dry-run",
    );
    assert.equal(code, 0);
    assert.deepEqual(await readdir(dir), []);
    assert.match(stdout, /random/);
    assert.match(stdout, /meaningless/);
    assert.match(stdout, /layers 1 \(llama-3\.1-8b has 32\)/);
    // Embeddings and output 2 × 4096 × 128256, output_norm 4096, one block of 218,112,000.
    assert.match(stdout, /parameters {2}1\.27 B \(1,268,789,248\)/);
    assert.match(stdout, /token_embd\.weight\s+Q4_0\s+\[4096, 128256\]/);
    assert.match(stdout, /output\.weight\s+Q8_0\s+\[4096, 128256\]/);
    assert.match(stdout, /blk\.0\.attn_k\.weight\s+Q4_0\s+\[4096, 1024\]/);
    assert.match(stdout, /blk\.0\.ffn_down\.weight\s+Q4_0\s+\[14336, 4096\]/);
    assert.match(stdout, /file size {3}\d+\.\d+ MiB \([\d,]+ bytes\)/);
  });
});

test("the header of a one-layer llama-3.1-8b carries the real dimensions, as node-llama-cpp reads them", async () => {
  const like = findModelShape("llama-3.1-8b")!;
  const { spec } = syntheticModelSpec({ ...like, blockCount: 1, tensorType: "Q4_0", label: "llama-3.1-8b-l1-q4_0" });
  // The first chunk is the header alone: metadata and tensor infos, no weights generated.
  const header = new GgufWriter(spec).chunks().next().value as Buffer;
  const parsed = parseGgufHeader(header);
  const kv = new Map(parsed.metadata.map((entry) => [entry.key, entry.value]));
  assert.equal(kv.get("llama.embedding_length"), 4096);
  assert.equal(kv.get("llama.block_count"), 1);
  assert.equal(kv.get("llama.attention.head_count_kv"), 8);
  assert.equal(kv.get("llama.feed_forward_length"), 14336);
  assert.equal(kv.get("llama.context_length"), 131072);
  assert.equal(kv.get("llama.rope.freq_base"), 500000);
  assert.equal((kv.get("tokenizer.ggml.tokens") as string[]).length, 128256);
  assert.equal(kv.get("general.file_type"), 2);

  await withTempDir("synth-command", async (dir) => {
    const path = join(dir, "header-only.gguf");
    await writeFile(path, header);
    const info = await readGgufFileInfo(path);
    assert.equal(info.metadata.general.name, "pagoda-synthetic-llama-3.1-8b-l1-q4_0");
    const dims = new Map(
      info.tensorInfo?.map((tensor) => [tensor.name, [tensor.dimensions.map(Number), tensor.ggmlType]]),
    );
    assert.deepEqual(dims.get("token_embd.weight"), [[4096, 128256], 2]);
    assert.deepEqual(dims.get("output.weight"), [[4096, 128256], 8]);
    assert.deepEqual(dims.get("blk.0.attn_q.weight"), [[4096, 4096], 2]);
    assert.deepEqual(dims.get("blk.0.attn_v.weight"), [[4096, 1024], 2]);
    assert.deepEqual(dims.get("blk.0.ffn_gate.weight"), [[4096, 14336], 2]);
    assert.deepEqual(dims.get("blk.0.attn_norm.weight"), [[4096], 0]);
    assert.equal(dims.size, 3 + 9);
  });
});

test("bad arguments exit with code 2 and say what is wrong on stderr", async () => {
  const cases: [string[], RegExp][] = [
    [["--like", "gpt-5", "--out", "x.gguf"], /unknown shape "gpt-5"; known: llama-3\.1-8b/],
    [["--like", "tiny-moe", "--type", "q5_k", "--out", "x.gguf"], /--type must be one of q4_0, q8_0, f16, f32/],
    [["--like", "tiny-moe"], /--out <file\.gguf> is required/],
    [["--layers", "two", "--out", "x.gguf"], /--layers must be an integer of at least 1, got "two"/],
    [["--layers", "0", "--out", "x.gguf"], /--layers must be an integer/],
    [["--dim", "100", "--heads", "4", "--type", "q8_0", "--out", "x.gguf"], /multiples of 32/],
    [["--experts", "4", "--experts-used", "8", "--out", "x.gguf"], /expertUsedCount must be between 1 and 4/],
    [["--arch", "gpt2", "--out", "x.gguf"], /--arch must be one of llama, qwen2/],
    [["--bogus"], /Unknown option '--bogus'/],
    [["positional"], /positional/i],
  ];
  for (const [argv, message] of cases) {
    const { code, stdout, stderr } = await synth(...argv);
    assert.equal(code, 2, argv.join(" "));
    assert.equal(stdout, "", argv.join(" "));
    assert.match(stderr, message, argv.join(" "));
    assert.match(stderr, /Usage:/);
  }
});

test("writing a model of explicit dimensions reports its parameters and size, and says it is meaningless", async () => {
  await withTempDir("synth-command", async (dir) => {
    const out = join(dir, "small.gguf");
    const { code, stdout, stderr } = await synth(
      "--vocab",
      "512",
      "--dim",
      "64",
      "--layers",
      "2",
      "--heads",
      "4",
      "--kv-heads",
      "2",
      "--ffn",
      "128",
      "--experts",
      "4",
      "--experts-used",
      "2",
      "--type",
      "q8_0",
      "--seed",
      "9",
      "--out",
      out,
    );
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "", "small files write without progress lines");
    assert.match(stdout, /^SYNTHETIC MODEL: all weights are random, so its output is meaningless/);
    // Embeddings and output 2 × 64 × 512 + norm 64; per layer 12,416 of attention and norms, a 256-weight
    // router and 3 × 64 × 128 × 4 of experts, of which 2 of 4 are idle per token.
    assert.match(stdout, /parameters {2}287,552, 189,248 active per token/);
    const { size } = await stat(out);
    assert.match(stdout, new RegExp(`file size {3}0\\.\\d\\d MiB \\(${size.toLocaleString("en-US")} bytes\\)`));
    assert.match(stdout, /Wrote .*small\.gguf/);
    const header = await readGgufHeader(out);
    assert.deepEqual(header.tensors.find((tensor) => tensor.name === "blk.1.ffn_down_exps.weight")?.dims, [128, 64, 4]);
    assert.equal(
      header.metadata.find((kv) => kv.key === "general.name")?.value,
      "pagoda-synthetic-v512-d64-l2-h4-kv2-ff128-moe4x2-q8_0",
    );
  });
});

test("a file that cannot be written exits with code 1", async () => {
  await withTempDir("synth-command", async (dir) => {
    const { code, stderr } = await synth("--like", "tiny-moe", "--out", join(dir, "missing", "x.gguf"));
    assert.equal(code, 1);
    assert.match(stderr, /could not write .*ENOENT/);
  });
});
