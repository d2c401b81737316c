/**
 * Synthetic embedding and rerank models: the tensors and metadata llama.cpp's bert and qwen3 loaders expect, the
 * WordPiece vocabulary, the real shapes' sizes, and the shapes that cannot be written.
 */
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { parseGgufHeader } from "../../src/gguf/gguf-reader.ts";
import { GgufWriter } from "../../src/gguf/gguf-writer.ts";
import { findModelShape } from "../../src/gguf/model-shapes.ts";
import { QWEN3_RERANK_TEMPLATE } from "../../src/gguf/synthetic-metadata.ts";
import { planSyntheticModel, type SyntheticModelOptions, syntheticModelSpec } from "../../src/gguf/synthetic-model.ts";
import { buildWordPieceVocabulary, MIN_WORDPIECE_VOCAB_SIZE } from "../../src/gguf/synthetic-wordpiece-vocabulary.ts";
import { synth, withTempDir } from "../helpers/gguf-files.ts";

function like(name: string, overrides: SyntheticModelOptions = {}): SyntheticModelOptions {
  const shape = findModelShape(name);
  assert.ok(shape !== null, name);
  return { ...shape, tensorType: "F16", ...overrides };
}

/** The metadata as node-llama-cpp and llama.cpp read it back from the written header. */
function metadataOf(options: SyntheticModelOptions): Map<string, unknown> {
  const header = new GgufWriter(syntheticModelSpec(options).spec).chunks().next().value as Buffer;
  return new Map(parseGgufHeader(header).metadata.map((entry) => [entry.key, entry.value]));
}

function tensorRows(options: SyntheticModelOptions, prefix: (name: string) => boolean): [string, number[], string][] {
  return planSyntheticModel(options)
    .tensors.filter((tensor) => prefix(tensor.name))
    .map((tensor) => [tensor.name, [...tensor.dims], tensor.type]);
}

test("tiny-bert has llama.cpp's bert tensors: position and token-type tables, biases and post-norms", () => {
  const outside = tensorRows(like("tiny-bert"), (name) => !name.startsWith("blk."));
  assert.deepEqual(outside, [
    ["token_embd.weight", [128, 1024], "F16"],
    ["position_embd.weight", [128, 512], "F32"],
    ["token_types.weight", [128, 2], "F32"],
    ["token_embd_norm.weight", [128], "F32"],
    ["token_embd_norm.bias", [128], "F32"],
  ]);
  assert.deepEqual(
    tensorRows(like("tiny-bert", { tensorType: "Q8_0" }), (name) => name.startsWith("blk.1.")),
    [
      ["blk.1.attn_q.weight", [128, 128], "Q8_0"],
      ["blk.1.attn_q.bias", [128], "F32"],
      ["blk.1.attn_k.weight", [128, 128], "Q8_0"],
      ["blk.1.attn_k.bias", [128], "F32"],
      ["blk.1.attn_v.weight", [128, 128], "Q8_0"],
      ["blk.1.attn_v.bias", [128], "F32"],
      ["blk.1.attn_output.weight", [128, 128], "Q8_0"],
      ["blk.1.attn_output.bias", [128], "F32"],
      ["blk.1.attn_output_norm.weight", [128], "F32"],
      ["blk.1.attn_output_norm.bias", [128], "F32"],
      ["blk.1.ffn_up.weight", [128, 512], "Q8_0"],
      ["blk.1.ffn_up.bias", [512], "F32"],
      ["blk.1.ffn_down.weight", [512, 128], "Q8_0"],
      ["blk.1.ffn_down.bias", [128], "F32"],
      ["blk.1.layer_output_norm.weight", [128], "F32"],
      ["blk.1.layer_output_norm.bias", [128], "F32"],
    ],
  );
  assert.equal(planSyntheticModel(like("tiny-bert")).tensors.length, 5 + 2 * 16);
});

test("tiny-bert's metadata declares non-causal mean pooling and BERT's special tokens", () => {
  const kv = metadataOf(like("tiny-bert"));
  assert.equal(kv.get("general.architecture"), "bert");
  assert.equal(kv.get("bert.attention.causal"), false);
  assert.equal(kv.get("bert.pooling_type"), 1);
  assert.equal(kv.get("bert.attention.head_count"), 4);
  assert.equal(kv.has("bert.attention.head_count_kv"), false);
  assert.ok(Math.abs((kv.get("bert.attention.layer_norm_epsilon") as number) - 1e-12) < 1e-18);
  assert.equal(kv.has("bert.classifier.output_labels"), false);
  assert.equal(kv.get("tokenizer.ggml.model"), "bert");
  assert.equal(kv.get("tokenizer.ggml.token_type_count"), 2);
  const tokens = kv.get("tokenizer.ggml.tokens") as string[];
  const idOf = (key: string): string => tokens[kv.get(key) as number]!;
  assert.equal(idOf("tokenizer.ggml.bos_token_id"), "[CLS]");
  assert.equal(idOf("tokenizer.ggml.cls_token_id"), "[CLS]");
  assert.equal(idOf("tokenizer.ggml.eos_token_id"), "[SEP]");
  assert.equal(idOf("tokenizer.ggml.seperator_token_id"), "[SEP]");
  assert.equal(idOf("tokenizer.ggml.padding_token_id"), "[PAD]");
  assert.equal(idOf("tokenizer.ggml.unknown_token_id"), "[UNK]");
  assert.equal(idOf("tokenizer.ggml.mask_token_id"), "[MASK]");
  assert.deepEqual(
    ["add_bos_token", "add_eos_token", "add_sep_token"].map((flag) => kv.get(`tokenizer.ggml.${flag}`)),
    [true, true, false],
  );
  assert.equal(kv.has("tokenizer.chat_template"), false);
});

test("tiny-bert-reranker adds a dense+output classification head with one output and rank pooling", () => {
  assert.deepEqual(
    tensorRows(like("tiny-bert-reranker"), (name) => name.startsWith("cls")),
    [
      ["cls.weight", [128, 128], "F16"],
      ["cls.bias", [128], "F32"],
      ["cls.output.weight", [128, 1], "F16"],
      ["cls.output.bias", [1], "F32"],
    ],
  );
  const kv = metadataOf(like("tiny-bert-reranker"));
  assert.equal(kv.get("bert.pooling_type"), 4);
  assert.deepEqual(kv.get("bert.classifier.output_labels"), ["LABEL_0"]);
});

test("tiny-reranker is a tied qwen3 with q/k norms, no q/k/v biases, a yes/no head and the rerank template", () => {
  const options = like("tiny-reranker");
  assert.deepEqual(
    tensorRows(options, (name) => !name.startsWith("blk.")),
    [
      ["token_embd.weight", [128, 1024], "F16"],
      ["output_norm.weight", [128], "F32"],
      ["cls.output.weight", [128, 2], "F16"],
    ],
  );
  assert.deepEqual(
    tensorRows(options, (name) => name.startsWith("blk.0.attn")),
    [
      ["blk.0.attn_norm.weight", [128], "F32"],
      ["blk.0.attn_q.weight", [128, 256], "F16"],
      ["blk.0.attn_k.weight", [128, 128], "F16"],
      ["blk.0.attn_v.weight", [128, 128], "F16"],
      ["blk.0.attn_output.weight", [256, 128], "F16"],
      ["blk.0.attn_q_norm.weight", [64], "F32"],
      ["blk.0.attn_k_norm.weight", [64], "F32"],
    ],
  );
  const kv = metadataOf(options);
  assert.equal(kv.get("general.architecture"), "qwen3");
  assert.equal(kv.get("qwen3.attention.key_length"), 64);
  assert.equal(kv.get("qwen3.attention.value_length"), 64);
  assert.equal(kv.get("qwen3.rope.dimension_count"), 64);
  assert.equal(kv.get("qwen3.pooling_type"), 4);
  assert.deepEqual(kv.get("qwen3.classifier.output_labels"), ["yes", "no"]);
  assert.deepEqual(kv.get("tokenizer.chat_templates"), ["rerank"]);
  assert.equal(kv.get("tokenizer.chat_template.rerank"), QWEN3_RERANK_TEMPLATE);
  assert.match(QWEN3_RERANK_TEMPLATE, /<Query>: \{query\}\n<Document>: \{document\}<\|im_end\|>/);
  assert.equal(typeof kv.get("tokenizer.chat_template"), "string", "the ChatML template stays beside it");
});

test("a qwen3 model without a head is a plain decoder: an output projection, q/k norms, no biases", () => {
  const options: SyntheticModelOptions = { architecture: "qwen3", vocabSize: 512, tensorType: "F32" };
  const names = planSyntheticModel(options).tensors.map((tensor) => tensor.name);
  assert.ok(names.includes("output.weight"));
  assert.ok(names.includes("blk.3.attn_k_norm.weight"));
  assert.ok(!names.some((name) => name.endsWith(".bias") || name.startsWith("cls")));
  const kv = metadataOf(options);
  assert.equal(kv.has("qwen3.pooling_type"), false);
  assert.equal(kv.has("tokenizer.chat_template.rerank"), false);
  assert.equal(kv.get("qwen3.attention.key_length"), 32);
});

test("the real shapes have their converted GGUFs' parameter counts", () => {
  const counts: Record<string, number> = {
    // 33,360,000 on Hugging Face, less the pooler (384 × 384 + 384) the converter drops.
    "bge-small-en-v1.5": 33_212_160,
    // XLM-RoBERTa base with a 768→768→1 head; the two position rows before the first real one are dropped.
    "bge-reranker-base": 278_042_881,
    // Tied embeddings of 151,669 tokens, 28 blocks of 15,730,944, the two-row head and the output norm.
    "qwen3-reranker-0.6b": 595_778_560,
  };
  for (const [name, count] of Object.entries(counts))
    assert.equal(planSyntheticModel(like(name, { tensorType: "Q8_0" })).parameterCount, count, name);
  const reranker = planSyntheticModel(like("qwen3-reranker-0.6b"));
  const dims = new Map(reranker.tensors.map((tensor) => [tensor.name, tensor.dims]));
  assert.deepEqual(dims.get("blk.27.attn_q.weight"), [1024, 2048]);
  assert.deepEqual(dims.get("blk.27.attn_k.weight"), [1024, 1024]);
  assert.deepEqual(dims.get("cls.output.weight"), [1024, 2]);
  assert.equal(dims.has("output.weight"), false);
  assert.deepEqual(planSyntheticModel(like("bge-reranker-base")).tensors.at(2)?.dims, [768, 1], "one token type");
});

test("the WordPiece vocabulary keeps BERT's specials first, marks word starts with ▁ and fills to any size", () => {
  const { tokens, types } = buildWordPieceVocabulary(1024);
  assert.equal(tokens.length, 1024);
  assert.equal(new Set(tokens).size, 1024, "no duplicate pieces");
  assert.deepEqual(tokens.slice(0, 5), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
  assert.deepEqual(types.slice(0, 6), [3, 3, 3, 3, 3, 1]);
  for (const piece of ["\u2581the", "\u2581hello", "\u2581a", "a", "\u2581.", "ing"])
    assert.ok(tokens.includes(piece), piece);
  assert.ok(!tokens.includes("##ing"), "continuations are stored without ##, as the converter stores them");
  const large = buildWordPieceVocabulary(30522);
  assert.equal(large.tokens.length, 30522);
  assert.equal(large.tokens.at(-1), `\u2581[unused${30522 - 1 - large.tokens.indexOf("\u2581[unused0]")}]`);
  assert.equal(buildWordPieceVocabulary(MIN_WORDPIECE_VOCAB_SIZE).tokens.length, MIN_WORDPIECE_VOCAB_SIZE);
  assert.throws(() => buildWordPieceVocabulary(MIN_WORDPIECE_VOCAB_SIZE - 1), /vocabSize must be at least/);
});

test("encoder and reranker shapes llama.cpp would reject are refused", () => {
  const bert: SyntheticModelOptions = { architecture: "bert", vocabSize: 512 };
  const cases: [SyntheticModelOptions, RegExp][] = [
    [{ ...bert, headCountKv: 2 }, /bert has no grouped-query attention/],
    [{ ...bert, tiedEmbeddings: true }, /no output projection to tie/],
    [{ ...bert, chatTemplate: "hermes-tools" }, /carry no chat template/],
    [{ ...bert, vocabSize: 100 }, /vocabSize must be at least/],
    [{ ...bert, pooling: "rank" }, /goes with a classification head/],
    [{ ...bert, tokenTypeCount: 0 }, /at least one token type/],
    [{ architecture: "llama", classifierLabels: ["yes", "no"] }, /only bert and qwen3/],
    [{ architecture: "qwen2", classifierLabels: ["yes"] }, /only bert and qwen3/],
    [{ architecture: "qwen3", classifierLabels: ["yes"], pooling: "mean" }, /goes with a classification head/],
    [{ architecture: "qwen3", classifierLabels: [""] }, /non-empty strings/],
    [{ architecture: "qwen3", tokenTypeCount: 2 }, /only bert has token type/],
    [{ architecture: "llama", headLength: 64 }, /only qwen3 models may have headLength/],
    [{ architecture: "qwen3", headLength: 0 }, /headLength must be a positive integer/],
    [{ architecture: "qwen3", headLength: 36, tensorType: "Q8_0" }, /multiples of 32/],
    [{ ...bert, expertCount: 4, expertUsedCount: 2 }, /llama architecture/],
  ];
  for (const [options, message] of cases)
    assert.throws(() => planSyntheticModel(options), message, JSON.stringify(options));
  const defaults = planSyntheticModel(bert).shape;
  assert.deepEqual(
    [defaults.headCountKv, defaults.pooling, defaults.tokenTypeCount, defaults.rmsNormEpsilon],
    [4, "mean", 2, 1e-12],
    "bert's own defaults",
  );
});

test("pagoda synth lists the retrieval shapes and plans them without writing", async () => {
  const list = await synth("--list");
  assert.equal(list.code, 0);
  assert.match(list.stdout, /^Embedding and rerank models:$/m);
  assert.match(list.stdout, /^bge-small-en-v1\.5\s+bert\s+30522\s+384\s+12\s+12\s+12\s+32\s+1536\s+512\s+cls\s+-\s/m);
  assert.match(
    list.stdout,
    /^qwen3-reranker-0\.6b\s+qwen3\s+151669\s+1024\s+28\s+16\s+8\s+128\s+3072\s+40960\s+rank\s+yes\/no/m,
  );
  assert.match(list.stdout, /^tiny-bert-reranker\s+bert\s.*\srank\s+LABEL_0\s/m);

  await withTempDir("synth-encoders", async (dir) => {
    const out = join(dir, "reranker.gguf");
    const { code, stdout, stderr } = await synth("--like", "qwen3-reranker-0.6b", "--out", out, "--dry-run");
    assert.equal(code, 0, stderr);
    assert.deepEqual(await readdir(dir), []);
    assert.match(stdout, /heads 16 \(8 kv\) of 128, ffn 3072, ctx 40960, tied embeddings/);
    assert.match(stdout, /pooling {5}rank, classification head with 2 output\(s\): yes, no/);
    assert.match(stdout, /parameters {2}595\.78 M \(595,778,560\)/);
    assert.match(stdout, /cls\.output\.weight\s+Q4_0\s+\[1024, 2\]/);
    assert.match(stdout, /file size {3}[\d.]+ MiB/);

    const bert = await synth("--arch", "bert", "--layers", "1", "--dry-run");
    assert.equal(bert.code, 0, bert.stderr);
    assert.match(bert.stdout, /shape {7}bert, vocab 2048, dim 128, layers 1, heads 4 \(4 kv\)/);
    assert.match(bert.stdout, /pooling {5}mean\n/);
  });
  const gqa = await synth("--like", "tiny-bert", "--heads", "8", "--dry-run");
  assert.equal(gqa.code, 2);
  assert.match(gqa.stderr, /headCountKv must equal headCount/);
});
