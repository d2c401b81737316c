/**
 * The synthetic embedding and rerank models load in llama.cpp (through node-llama-cpp) and pool through pagoda's
 * own many-sequence context: tiny-bert gives one n_embd vector per input, the same alone as in a batch, and the
 * rerankers give their classification head's outputs for (query, document) pairs joined as llama-server joins them
 * (format_prompt_rerank in tools/server/server-common.cpp): the GGUF's rerank template with {query} and {document}
 * substituted and special tokens parsed, or else BOS? query EOS? SEP? document EOS? by the vocabulary's add flags.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext, test } from "node:test";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from "node-llama-cpp";
import type { TokenId } from "../../src/engine/engine.ts";
import { getInternals } from "../../src/engine/llama-internals.ts";
import { LlamaPoolingContext, modelPooling, type Pooling } from "../../src/engine/llama-pooling-context.ts";
import { synth } from "../helpers/gguf-files.ts";

let dir: string;
let llama: Llama;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-synth-encoders-"));
  llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
});

after(async () => {
  await llama?.dispose();
  if (dir != null) await rm(dir, { recursive: true, force: true });
});

/** Writes `--like shape` at `type`, loads it and hands it to `run` with a pooling context; skips on the stock addon. */
async function withPoolingModel(
  t: TestContext,
  shape: string,
  type: string,
  pooling: Pooling,
  maxBatchTokens: number,
  run: (model: LlamaModel, context: LlamaPoolingContext) => Promise<void>,
  extraArgs: readonly string[] = [],
): Promise<void> {
  const path = join(dir, `${shape}.gguf`);
  const { code, stderr } = await synth("--like", shape, "--type", type, ...extraArgs, "--out", path);
  assert.equal(code, 0, stderr);
  const model = await llama.loadModel({ modelPath: path });
  try {
    assert.equal(modelPooling(model), pooling, "pagoda reads the pooling type from the GGUF");
    const context = await LlamaPoolingContext.open(getInternals(model), {
      maxSequences: 4,
      maxBatchTokens,
      threads: 1,
      flashAttention: false,
      pooling,
      kvLayout: "pool",
    });
    if (context === null) {
      t.skip("the stock addon cannot read one sequence's pooled vector (npm run build:addon)");
      return;
    }
    try {
      await run(model, context);
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
    // The real shapes are large; tests run one after another, so one file at a time is on disk.
    await rm(path, { force: true });
  }
}

/** The tokens llama-server scores for a (query, document) pair. */
function rerankTokens(model: LlamaModel, query: string, document: string): Token[] {
  const tokenizer = model.fileInfo.metadata.tokenizer as unknown as Record<string, unknown>;
  const template = tokenizer["chat_template.rerank"];
  if (typeof template === "string")
    return model.tokenize(template.replaceAll("{query}", query).replaceAll("{document}", document), true);
  const flags = tokenizer.ggml as { add_bos_token?: boolean; add_eos_token?: boolean; add_sep_token?: boolean };
  assert.ok([flags.add_bos_token, flags.add_eos_token, flags.add_sep_token].every((flag) => flag !== undefined));
  const { bos, sep } = model.tokens;
  const eos = model.tokens.eos ?? sep;
  const special = (isAdded: boolean | undefined, token: Token | null): Token[] =>
    isAdded === true && token !== null ? [token] : [];
  return [
    ...special(flags.add_bos_token, bos),
    ...model.tokenize(query),
    ...special(flags.add_eos_token, eos),
    ...special(flags.add_sep_token, sep),
    ...model.tokenize(document),
    ...special(flags.add_eos_token, eos),
  ];
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((max, value, index) => Math.max(max, Math.abs(value - b[index]!)), 0);
}

/** Checks each output is finite, differs between inputs, and is the same alone as in one batch; returns the outputs. */
async function checkBatchedOutputs(context: LlamaPoolingContext, tokens: Token[][]): Promise<Float32Array[]> {
  // node-llama-cpp's and pagoda's token ids are the same numbers under different brands.
  const inputs = tokens.map((input) => input as readonly number[] as TokenId[]);
  const together = await context.embedBatch(inputs);
  // One decode at a time: a context runs a single batch.
  const alone: Float32Array[] = [];
  for (const input of inputs) alone.push((await context.embedBatch([input]))[0]!);
  for (const output of together) assert.ok(output.every(Number.isFinite), `finite: ${Array.from(output)}`);
  for (let i = 0; i < inputs.length; i++)
    for (let j = i + 1; j < inputs.length; j++)
      assert.ok(maxDifference(together[i]!, together[j]!) > 1e-4, `inputs ${i} and ${j} give different outputs`);
  const batchingError = Math.max(...together.map((output, index) => maxDifference(output, alone[index]!)));
  assert.ok(batchingError < 1e-4, `an input alone and in a batch of ${inputs.length} differ by ${batchingError}`);
  return together;
}

const TEXTS = ["hello world", "The quick brown fox jumps over the lazy dog.", "what time is it"];
const PAIRS: [string, string][] = [
  ["what is the capital of france", "Paris is the capital of France."],
  ["what is the capital of france", "The quick brown fox jumps over the lazy dog."],
  ["how do birds fly", "Paris is the capital of France."],
];

test("tiny-bert embeds each input into one n_embd vector, the same alone as among others", async (t) => {
  // F32: llama.cpp's CPU matmul picks its kernel by batch size (llamafile's sgemm or ggml's own, which round the
  // activations differently), so a 6-token input alone and in a 34-token batch differed by 9.2e-5 at F16, and by
  // 1.1e-5 at F32.
  await withPoolingModel(t, "tiny-bert", "f32", "mean", 128, async (model, context) => {
    const { bos, sep } = model.tokens;
    assert.ok(bos !== null && sep !== null);
    assert.equal(model.detokenize([bos], true), "[CLS]");
    // llama-server embeds with the vocabulary's specials added: WPM puts [CLS] first and [SEP] last.
    const inputs = TEXTS.map((text) => [bos, ...model.tokenize(text), sep]);
    const unknown = model.fileInfo.metadata.tokenizer.ggml.unknown_token_id;
    assert.ok(
      inputs.every((tokens) => tokens.every((token) => token !== unknown)),
      "the WordPiece vocabulary covers ASCII text without [UNK]",
    );
    const vectors = await checkBatchedOutputs(context, inputs);
    for (const vector of vectors) assert.equal(vector.length, model.embeddingVectorSize);
    assert.equal(model.embeddingVectorSize, 128);
  });
});

test("tiny-bert-reranker scores (query, document) pairs with its one classification output", async (t) => {
  await withPoolingModel(t, "tiny-bert-reranker", "q8_0", "rank", 128, async (model, context) => {
    const inputs = PAIRS.map(([query, document]) => rerankTokens(model, query, document));
    // [CLS] query [SEP] document [SEP], as BERT joins a pair.
    const first = inputs[0]!;
    assert.equal(first[0], model.tokens.bos);
    assert.equal(first.at(-1), model.tokens.sep);
    assert.equal(first.filter((token) => token === model.tokens.sep).length, 2);
    const scores = await checkBatchedOutputs(context, inputs);
    for (const score of scores) assert.equal(score.length, 1, "one output: the raw logit llama-server returns");
  });
});

test("tiny-reranker fills the rerank template and returns llama.cpp's softmax over yes and no", async (t) => {
  // The template alone is about 190 tokens of the synthetic vocabulary.
  await withPoolingModel(t, "tiny-reranker", "q4_0", "rank", 1024, async (model, context) => {
    const inputs = PAIRS.map(([query, document]) => rerankTokens(model, query, document));
    const imStart = model.tokenize("<|im_start|>", true);
    assert.equal(imStart.length, 1, "the template's markers are single control tokens");
    assert.equal(inputs[0]![0], imStart[0], "nothing is added before the template");
    const scores = await checkBatchedOutputs(context, inputs);
    for (const score of scores) {
      assert.equal(score.length, 2, "P(yes) and P(no); llama-server reports the first");
      assert.ok(score.every((p) => p > 0 && p < 1));
      assert.ok(Math.abs(score[0]! + score[1]! - 1) < 1e-5, `a softmax sums to 1: ${Array.from(score)}`);
    }
  });
});

test("the real shapes load at one layer and pool to their sizes: 384 dims, one score, P(yes) and P(no)", async (t) => {
  const cases = [
    ["bge-small-en-v1.5", "cls", 384],
    ["bge-reranker-base", "rank", 1],
    ["qwen3-reranker-0.6b", "rank", 2],
  ] as const;
  // One layer keeps each file under 200 MB; the embeddings and heads are full size.
  for (const [shape, pooling, outputs] of cases)
    await withPoolingModel(
      t,
      shape,
      "q4_0",
      pooling,
      64,
      async (model, context) => {
        const { bos, sep } = model.tokens;
        const eos = model.tokens.eos ?? sep;
        assert.ok(bos !== null && eos !== null);
        const input = [bos, ...model.tokenize("hello there"), eos] as readonly number[] as TokenId[];
        const [output] = await context.embedBatch([input]);
        assert.ok(output !== undefined && output.length === outputs, `${shape}: ${output?.length} outputs`);
        assert.ok(output.every(Number.isFinite), shape);
      },
      ["--layers", "1"],
    );
});
