/**
 * Synthetic BERT encoders (llama.cpp's `bert` architecture), as convert_hf_to_gguf.py writes BertModel and
 * XLMRobertaModel: learned position and token-type embeddings, post-norm blocks with biases everywhere, a GELU
 * feed-forward without a gate, non-causal attention and a pooling type. With classifier labels, the
 * sequence-classification head of a cross-encoder reranker: `cls` (dense, then tanh in llama.cpp's graph) and
 * `cls.output` (one output per label), applied to the [CLS] token's vector under rank pooling.
 */
import type { GgufKv } from "./gguf-kv.ts";
import type { GgufTensor } from "./gguf-writer.ts";
import { generalMetadata, retrievalMetadata } from "./synthetic-metadata.ts";
import type { SyntheticModelShape } from "./synthetic-model.ts";
import { tensorMakers, unitGainStd } from "./synthetic-tensors.ts";
import { buildWordPieceVocabulary, WORDPIECE_TOKEN_IDS } from "./synthetic-wordpiece-vocabulary.ts";

/**
 * Metadata of a bert model with the synthetic WordPiece vocabulary. The special-token flags are those the converter
 * derives from BERT's "[CLS] A [SEP] B [SEP]" template: BOS is [CLS] and EOS [SEP], both added, and no extra
 * separator, so llama-server joins a rerank pair as [CLS] query [SEP] document [SEP].
 */
export function bertMetadata(shape: SyntheticModelShape, seed: number, label: string): GgufKv[] {
  const vocabulary = buildWordPieceVocabulary(shape.vocabSize);
  const ids = WORDPIECE_TOKEN_IDS;
  return [
    ...generalMetadata(shape, seed, label),
    { key: "bert.vocab_size", type: "uint32", value: shape.vocabSize },
    { key: "bert.context_length", type: "uint32", value: shape.contextLength },
    { key: "bert.embedding_length", type: "uint32", value: shape.embeddingLength },
    { key: "bert.feed_forward_length", type: "uint32", value: shape.feedForwardLength },
    { key: "bert.block_count", type: "uint32", value: shape.blockCount },
    { key: "bert.attention.head_count", type: "uint32", value: shape.headCount },
    { key: "bert.attention.layer_norm_epsilon", type: "float32", value: shape.rmsNormEpsilon },
    // llama.cpp assumes causal attention unless told otherwise.
    { key: "bert.attention.causal", type: "bool", value: false },
    ...retrievalMetadata(shape),
    { key: "tokenizer.ggml.model", type: "string", value: "bert" },
    { key: "tokenizer.ggml.token_type_count", type: "uint32", value: shape.tokenTypeCount },
    { key: "tokenizer.ggml.tokens", type: "array", itemType: "string", value: vocabulary.tokens },
    { key: "tokenizer.ggml.token_type", type: "array", itemType: "int32", value: vocabulary.types },
    { key: "tokenizer.ggml.bos_token_id", type: "uint32", value: ids.cls },
    { key: "tokenizer.ggml.eos_token_id", type: "uint32", value: ids.sep },
    { key: "tokenizer.ggml.unknown_token_id", type: "uint32", value: ids.unknown },
    // llama.cpp's own spelling of the key.
    { key: "tokenizer.ggml.seperator_token_id", type: "uint32", value: ids.sep },
    { key: "tokenizer.ggml.padding_token_id", type: "uint32", value: ids.pad },
    { key: "tokenizer.ggml.cls_token_id", type: "uint32", value: ids.cls },
    { key: "tokenizer.ggml.mask_token_id", type: "uint32", value: ids.mask },
    { key: "tokenizer.ggml.add_bos_token", type: "bool", value: true },
    { key: "tokenizer.ggml.add_eos_token", type: "bool", value: true },
    { key: "tokenizer.ggml.add_sep_token", type: "bool", value: false },
  ];
}

/** Every tensor of a bert model of this shape, in the converter's order; values are generated when written. */
export function bertTensors(shape: SyntheticModelShape, seed: number): GgufTensor[] {
  const nEmbd = shape.embeddingLength;
  const nFf = shape.feedForwardLength;
  const { random, matrix, constant } = tensorMakers(shape, seed);
  const bias = (name: string, length: number): GgufTensor => random(name, [length], "F32");
  // A layer norm starts out as the identity: weight 1, bias 0.
  const layerNorm = (name: string): GgufTensor[] => [
    constant(`${name}.weight`, nEmbd, 1),
    constant(`${name}.bias`, nEmbd, 0),
  ];
  const linear = (name: string, inputs: number, outputs: number): GgufTensor[] => [
    matrix(`${name}.weight`, [inputs, outputs], "other", unitGainStd(inputs)),
    bias(`${name}.bias`, outputs),
  ];

  const tensors: GgufTensor[] = [
    matrix("token_embd.weight", [nEmbd, shape.vocabSize], "token_embd"),
    // The converter keeps the position and token-type tables in F32 whatever the file type.
    random("position_embd.weight", [nEmbd, shape.contextLength], "F32"),
    random("token_types.weight", [nEmbd, shape.tokenTypeCount], "F32"),
    ...layerNorm("token_embd_norm"),
  ];
  for (let block = 0; block < shape.blockCount; block++) {
    const prefix = `blk.${block}`;
    tensors.push(
      ...linear(`${prefix}.attn_q`, nEmbd, nEmbd),
      ...linear(`${prefix}.attn_k`, nEmbd, nEmbd),
      ...linear(`${prefix}.attn_v`, nEmbd, nEmbd),
      ...linear(`${prefix}.attn_output`, nEmbd, nEmbd),
      ...layerNorm(`${prefix}.attn_output_norm`),
      ...linear(`${prefix}.ffn_up`, nEmbd, nFf),
      ...linear(`${prefix}.ffn_down`, nFf, nEmbd),
      ...layerNorm(`${prefix}.layer_output_norm`),
    );
  }
  if (shape.classifierLabels.length > 0)
    tensors.push(...linear("cls", nEmbd, nEmbd), ...linear("cls.output", nEmbd, shape.classifierLabels.length));
  return tensors;
}
