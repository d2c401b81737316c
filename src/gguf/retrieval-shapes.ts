/**
 * Shapes of embedding and rerank models for `pagoda synth --like`: real ones for capacity planning, from their
 * published Hugging Face configs as convert_hf_to_gguf.py converts them, and tiny ones for tests. The vocabulary is
 * synthetic, of the same size: WordPiece for every bert model (bge-reranker-base really has XLM-RoBERTa's
 * SentencePiece, which llama.cpp runs as its "t5" tokenizer; the tensors are the same), SentencePiece for qwen3.
 */
import type { ModelShape } from "./model-shapes.ts";

const DENSE = { expertCount: 0, expertUsedCount: 0 } as const;

/** BERT-base-style encoders as the converter writes them; bert has no RoPE, so its base frequency is never used. */
const BERT = {
  architecture: "bert",
  ropeFreqBase: 10000,
  rmsNormEpsilon: 1e-12,
  tiedEmbeddings: false,
  tokenTypeCount: 2,
  ...DENSE,
} as const;

/**
 * Qwen3-Reranker as the converter writes it: pooling rank, the "yes" and "no" rows of the LM head as `cls.output`,
 * and a rerank prompt template. llama.cpp applies a softmax over the two outputs, so each score it returns is
 * P(yes) and P(no).
 */
const QWEN3_RERANKER = {
  architecture: "qwen3",
  ropeFreqBase: 1000000,
  rmsNormEpsilon: 1e-6,
  tiedEmbeddings: true,
  classifierLabels: ["yes", "no"],
  pooling: "rank",
  ...DENSE,
} as const;

/** Small enough for tests: dimensions are multiples of 32, so they quantize, and each loads in a moment. */
const TINY_BERT = {
  ...BERT,
  source: "pagoda test shape",
  vocabSize: 1024,
  embeddingLength: 128,
  blockCount: 2,
  headCount: 4,
  headCountKv: 4,
  feedForwardLength: 512,
  contextLength: 512,
} as const;

export const RETRIEVAL_SHAPES: readonly ModelShape[] = Object.freeze(
  (
    [
      {
        // Its sentence-transformers config pools the [CLS] token, so the converter writes pooling cls.
        name: "bge-small-en-v1.5",
        source: "BAAI/bge-small-en-v1.5",
        ...BERT,
        vocabSize: 30522,
        embeddingLength: 384,
        blockCount: 12,
        headCount: 12,
        headCountKv: 12,
        feedForwardLength: 1536,
        contextLength: 512,
        pooling: "cls",
      },
      {
        // XLM-RoBERTa, which llama.cpp loads as bert: one token type, and 514 position rows of which the converter
        // drops the two before the first real position.
        name: "bge-reranker-base",
        source: "BAAI/bge-reranker-base",
        ...BERT,
        vocabSize: 250002,
        embeddingLength: 768,
        blockCount: 12,
        headCount: 12,
        headCountKv: 12,
        feedForwardLength: 3072,
        contextLength: 512,
        rmsNormEpsilon: 1e-5,
        tokenTypeCount: 1,
        classifierLabels: ["LABEL_0"],
        pooling: "rank",
      },
      {
        name: "qwen3-reranker-0.6b",
        source: "Qwen/Qwen3-Reranker-0.6B",
        ...QWEN3_RERANKER,
        vocabSize: 151669,
        embeddingLength: 1024,
        blockCount: 28,
        headCount: 16,
        headCountKv: 8,
        headLength: 128,
        feedForwardLength: 3072,
        contextLength: 40960,
      },
      { name: "tiny-bert", ...TINY_BERT, pooling: "mean" },
      { name: "tiny-bert-reranker", ...TINY_BERT, classifierLabels: ["LABEL_0"], pooling: "rank" },
      {
        // Heads of 64 on 128 dims, so the attention is wider than the hidden size, as in Qwen3-0.6B.
        name: "tiny-reranker",
        source: "pagoda test shape",
        ...QWEN3_RERANKER,
        vocabSize: 1024,
        embeddingLength: 128,
        blockCount: 2,
        headCount: 4,
        headCountKv: 2,
        headLength: 64,
        feedForwardLength: 384,
        contextLength: 2048,
      },
    ] satisfies ModelShape[]
  ).map((shape): ModelShape => Object.freeze(shape)),
);
