/**
 * Shapes of well-known models, so a synthetic model can have a real model's tensor sizes, and with them its memory
 * footprint, without downloading it. The numbers are the published Hugging Face configs; only the vocabulary is
 * synthetic (a byte-fallback SentencePiece vocabulary of the same size), and Qwen2.5 keeps the qwen2 architecture
 * with its q/k/v biases. Embedding and rerank models are in their own table (retrieval-shapes.ts).
 */
import { RETRIEVAL_SHAPES } from "./retrieval-shapes.ts";
import type { SyntheticModelShape } from "./synthetic-model.ts";

/** Fields whose defaults follow from the architecture, so a row states them only where the model departs. */
type OptionalFields = "headLength" | "pooling" | "classifierLabels" | "tokenTypeCount";

export interface ModelShape
  extends Omit<SyntheticModelShape, "tensorType" | "chatTemplate" | OptionalFields>,
    Partial<Pick<SyntheticModelShape, OptionalFields>> {
  /** The name `pagoda synth --like` takes. */
  name: string;
  /** The model whose config the numbers come from. */
  source: string;
}

const DENSE = { expertCount: 0, expertUsedCount: 0 } as const;

const LLAMA_3 = {
  architecture: "llama",
  vocabSize: 128256,
  contextLength: 131072,
  ropeFreqBase: 500000,
  rmsNormEpsilon: 1e-5,
  ...DENSE,
} as const;

const QWEN_2_5 = {
  architecture: "qwen2",
  contextLength: 32768,
  ropeFreqBase: 1000000,
  rmsNormEpsilon: 1e-6,
  ...DENSE,
} as const;

const MISTRAL_7B = {
  architecture: "llama",
  vocabSize: 32000,
  embeddingLength: 4096,
  blockCount: 32,
  headCount: 32,
  headCountKv: 8,
  feedForwardLength: 14336,
  contextLength: 32768,
  ropeFreqBase: 1000000,
  rmsNormEpsilon: 1e-5,
  tiedEmbeddings: false,
} as const;

export const MODEL_SHAPES: readonly ModelShape[] = Object.freeze(
  (
    [
      {
        name: "llama-3.1-8b",
        source: "meta-llama/Llama-3.1-8B-Instruct",
        ...LLAMA_3,
        embeddingLength: 4096,
        blockCount: 32,
        headCount: 32,
        headCountKv: 8,
        feedForwardLength: 14336,
        tiedEmbeddings: false,
      },
      {
        name: "llama-3.2-1b",
        source: "meta-llama/Llama-3.2-1B-Instruct",
        ...LLAMA_3,
        embeddingLength: 2048,
        blockCount: 16,
        headCount: 32,
        headCountKv: 8,
        feedForwardLength: 8192,
        tiedEmbeddings: true,
      },
      {
        name: "qwen2.5-7b",
        source: "Qwen/Qwen2.5-7B-Instruct",
        ...QWEN_2_5,
        vocabSize: 152064,
        embeddingLength: 3584,
        blockCount: 28,
        headCount: 28,
        headCountKv: 4,
        feedForwardLength: 18944,
        tiedEmbeddings: false,
      },
      {
        name: "qwen2.5-0.5b",
        source: "Qwen/Qwen2.5-0.5B-Instruct",
        ...QWEN_2_5,
        vocabSize: 151936,
        embeddingLength: 896,
        blockCount: 24,
        headCount: 14,
        headCountKv: 2,
        feedForwardLength: 4864,
        tiedEmbeddings: true,
      },
      { name: "mistral-7b", source: "mistralai/Mistral-7B-Instruct-v0.2", ...MISTRAL_7B, ...DENSE },
      {
        name: "mixtral-8x7b",
        source: "mistralai/Mixtral-8x7B-Instruct-v0.1",
        ...MISTRAL_7B,
        expertCount: 8,
        expertUsedCount: 2,
      },
      {
        // Small enough for tests: every dimension is a multiple of 32, so it quantizes, and it loads in a moment.
        name: "tiny-moe",
        source: "pagoda test shape",
        architecture: "llama",
        vocabSize: 1024,
        embeddingLength: 64,
        blockCount: 2,
        headCount: 4,
        headCountKv: 2,
        feedForwardLength: 128,
        contextLength: 2048,
        ropeFreqBase: 10000,
        rmsNormEpsilon: 1e-5,
        tiedEmbeddings: false,
        expertCount: 4,
        expertUsedCount: 2,
      },
    ] satisfies ModelShape[]
  ).map((shape): ModelShape => Object.freeze(shape)),
);

/** The shape called `name` (case-insensitive) in either table, or null. */
export function findModelShape(name: string): ModelShape | null {
  const wanted = name.toLowerCase();
  return [...MODEL_SHAPES, ...RETRIEVAL_SHAPES].find((shape) => shape.name === wanted) ?? null;
}

/** Every name `--like` takes. */
export function modelShapeNames(): string[] {
  return [...MODEL_SHAPES, ...RETRIEVAL_SHAPES].map((shape) => shape.name);
}
