/** GGUF metadata of synthetic models: the keys every model has, and those of the decoders (llama, qwen2, qwen3). */
import type { GgufKv } from "./gguf-kv.ts";
import { syntheticChatTemplate } from "./synthetic-chat-templates.ts";
import type { SyntheticModelShape, SyntheticPooling, SyntheticTensorType } from "./synthetic-model.ts";
import { buildSyntheticVocabulary } from "./synthetic-vocabulary.ts";

/** llama.cpp's `general.file_type` ids (LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q4_0, MOSTLY_Q8_0). */
export const LLAMA_FILE_TYPE: Readonly<Record<SyntheticTensorType, number>> = Object.freeze({
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 7,
});

/** llama.cpp's `llama_pooling_type` ids. */
const POOLING_TYPE: Readonly<Record<Exclude<SyntheticPooling, "none">, number>> = { mean: 1, cls: 2, last: 3, rank: 4 };

/**
 * The rerank prompt convert_hf_to_gguf.py writes for Qwen3-Reranker. llama-server reads it as
 * `tokenizer.chat_template.rerank`, substitutes `{query}` and `{document}` and tokenizes the result with special
 * tokens parsed and nothing added; the last token's yes/no logits are the score.
 */
export const QWEN3_RERANK_TEMPLATE =
  "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct " +
  'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n' +
  "<|im_start|>user\n<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n" +
  "<Query>: {query}\n<Document>: {document}<|im_end|>\n" +
  "<|im_start|>assistant\n<think>\n\n</think>\n\n";

/** The keys every synthetic model opens with: architecture, name, the random-weights notice, file type. */
export function generalMetadata(shape: SyntheticModelShape, seed: number, label: string): GgufKv[] {
  return [
    { key: "general.architecture", type: "string", value: shape.architecture },
    { key: "general.name", type: "string", value: `pagoda-synthetic-${label}` },
    {
      key: "general.description",
      type: "string",
      value:
        `Synthetic test model: all weights are random (seed ${seed}), so its output is meaningless. ` +
        "It exists only to exercise loading, tokenization and generation.",
    },
    { key: "general.file_type", type: "uint32", value: LLAMA_FILE_TYPE[shape.tensorType] },
  ];
}

/** `<arch>.pooling_type` and `<arch>.classifier.output_labels`, where the shape has them. */
export function retrievalMetadata(shape: SyntheticModelShape): GgufKv[] {
  const arch = shape.architecture;
  return [
    ...(shape.pooling === "none"
      ? []
      : [{ key: `${arch}.pooling_type`, type: "uint32", value: POOLING_TYPE[shape.pooling] } as const]),
    ...(shape.classifierLabels.length === 0
      ? []
      : [
          {
            key: `${arch}.classifier.output_labels`,
            type: "array",
            itemType: "string",
            value: shape.classifierLabels,
          } as const,
        ]),
  ];
}

/** Metadata of a llama, qwen2 or qwen3 model with the byte-fallback SentencePiece vocabulary. */
export function decoderMetadata(shape: SyntheticModelShape, seed: number, label: string): GgufKv[] {
  const chatTemplate = syntheticChatTemplate(shape.chatTemplate);
  const vocabulary = buildSyntheticVocabulary(shape.vocabSize, chatTemplate.userDefinedTokens);
  const imEnd = vocabulary.tokens.indexOf("<|im_end|>");
  const arch = shape.architecture;
  const experts: GgufKv[] =
    shape.expertCount === 0
      ? []
      : [
          { key: `${arch}.expert_count`, type: "uint32", value: shape.expertCount },
          { key: `${arch}.expert_used_count`, type: "uint32", value: shape.expertUsedCount },
        ];
  // Qwen3's heads need not tile the hidden size, so its converter always states their size.
  const headLengths: GgufKv[] =
    arch === "qwen3"
      ? [
          { key: `${arch}.attention.key_length`, type: "uint32", value: shape.headLength },
          { key: `${arch}.attention.value_length`, type: "uint32", value: shape.headLength },
        ]
      : [];
  const rerankTemplate: GgufKv[] =
    arch === "qwen3" && shape.classifierLabels.length > 0
      ? [
          { key: "tokenizer.chat_templates", type: "array", itemType: "string", value: ["rerank"] },
          { key: "tokenizer.chat_template.rerank", type: "string", value: QWEN3_RERANK_TEMPLATE },
        ]
      : [];
  return [
    ...generalMetadata(shape, seed, label),
    { key: `${arch}.vocab_size`, type: "uint32", value: shape.vocabSize },
    { key: `${arch}.context_length`, type: "uint32", value: shape.contextLength },
    { key: `${arch}.embedding_length`, type: "uint32", value: shape.embeddingLength },
    { key: `${arch}.block_count`, type: "uint32", value: shape.blockCount },
    { key: `${arch}.feed_forward_length`, type: "uint32", value: shape.feedForwardLength },
    { key: `${arch}.attention.head_count`, type: "uint32", value: shape.headCount },
    { key: `${arch}.attention.head_count_kv`, type: "uint32", value: shape.headCountKv },
    ...headLengths,
    ...experts,
    { key: `${arch}.rope.dimension_count`, type: "uint32", value: shape.headLength },
    { key: `${arch}.rope.freq_base`, type: "float32", value: shape.ropeFreqBase },
    { key: `${arch}.attention.layer_norm_rms_epsilon`, type: "float32", value: shape.rmsNormEpsilon },
    ...retrievalMetadata(shape),
    { key: "tokenizer.ggml.model", type: "string", value: "llama" },
    { key: "tokenizer.ggml.tokens", type: "array", itemType: "string", value: vocabulary.tokens },
    { key: "tokenizer.ggml.scores", type: "array", itemType: "float32", value: vocabulary.scores },
    { key: "tokenizer.ggml.token_type", type: "array", itemType: "int32", value: vocabulary.types },
    { key: "tokenizer.ggml.unknown_token_id", type: "uint32", value: 0 },
    { key: "tokenizer.ggml.bos_token_id", type: "uint32", value: 1 },
    { key: "tokenizer.ggml.eos_token_id", type: "uint32", value: 2 },
    { key: "tokenizer.ggml.eot_token_id", type: "uint32", value: imEnd },
    { key: "tokenizer.ggml.add_bos_token", type: "bool", value: true },
    { key: "tokenizer.ggml.add_eos_token", type: "bool", value: false },
    { key: "tokenizer.chat_template", type: "string", value: chatTemplate.text },
    ...rerankTemplate,
  ];
}
