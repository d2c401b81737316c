/** The tensors of a synthetic model: which matrices, their shapes, and the encoding llama-quantize would give each. */
import type { EncodableTypeName, GgufTensor } from "./gguf-writer.ts";
import type { SyntheticModelShape } from "./synthetic-model.ts";
import { syntheticWeights, WEIGHT_STD } from "./synthetic-weights.ts";

export type MatrixRole = "token_embd" | "output" | "attn_k" | "attn_v" | "other";

/**
 * Encoding of a weight matrix, following llama-quantize's defaults for the file type. For Q4_0 it puts
 * output.weight (token_embd.weight too when they are tied) at Q6_K, which this writer cannot encode: Q8_0 stands
 * in, about 30% larger than Q6_K. llama-quantize also does so itself when n_embd is not a multiple of 256. Models
 * with exactly 8 experts get Q8_0 attn_k and attn_v, as llama-quantize gives them.
 */
function matrixType(shape: SyntheticModelShape, role: MatrixRole): EncodableTypeName {
  if (shape.tensorType !== "Q4_0") return shape.tensorType;
  if (role === "output" || (role === "token_embd" && shape.tiedEmbeddings)) return "Q8_0";
  if ((role === "attn_k" || role === "attn_v") && shape.expertCount === 8) return "Q8_0";
  return "Q4_0";
}

/** A tensor of seeded random values, generated a chunk at a time when it is written. */
function randomTensor(
  name: string,
  dims: readonly number[],
  type: EncodableTypeName,
  seed: number,
  std: number,
): GgufTensor {
  const count = dims.reduce((product, dim) => product * dim, 1);
  return { name, dims, type, data: () => syntheticWeights(name, count, dims[0]!, seed, std) };
}

/**
 * Spread of weights that keep an activation's scale through a layer (1/√inputs), for layers whose output must differ
 * clearly between inputs: a classification head, and every layer of a post-norm bert, whose layer norms keep it from
 * blowing up. With {@link WEIGHT_STD} throughout, tiny-bert-reranker's scores for three different pairs lay within
 * 1e-3 of each other (within 3e-3 with a unit-gain head alone), too close for tests that compare scores at 1e-3;
 * with unit gain throughout they spread over 3e-2.
 */
export function unitGainStd(inputs: number): number {
  return 1 / Math.sqrt(inputs);
}

/** Makers of the tensors of one model, each in the encoding converters and llama-quantize would give it. */
export interface TensorMakers {
  /** Seeded random values in an explicit type; `std` defaults to {@link WEIGHT_STD}. */
  random(name: string, dims: readonly number[], type: EncodableTypeName, std?: number): GgufTensor;
  /** A weight matrix, in the file's type (or what llama-quantize picks for its role); `std` as for `random`. */
  matrix(name: string, dims: readonly number[], role?: MatrixRole, std?: number): GgufTensor;
  /** A 1-D F32 tensor of a constant: norm weights are 1 and norm biases 0, as a freshly initialized model has. */
  constant(name: string, length: number, value: number): GgufTensor;
}

export function tensorMakers(shape: SyntheticModelShape, seed: number): TensorMakers {
  const random = (name: string, dims: readonly number[], type: EncodableTypeName, std = WEIGHT_STD): GgufTensor =>
    randomTensor(name, dims, type, seed, std);
  return {
    random,
    matrix: (name, dims, role = "other", std = WEIGHT_STD) => random(name, dims, matrixType(shape, role), std),
    // Converters keep 1-D tensors in F32 regardless of the file type.
    constant: (name, length, value) => ({
      name,
      dims: [length],
      type: "F32",
      data: () => new Float32Array(length).fill(value),
    }),
  };
}

/** Every tensor of a decoder of this shape, in the order converters write them; values are generated when written. */
export function syntheticTensors(shape: SyntheticModelShape, seed: number): GgufTensor[] {
  const nEmbd = shape.embeddingLength;
  const nEmbdQ = shape.headLength * shape.headCount;
  const nEmbdKv = shape.headLength * shape.headCountKv;
  const nFf = shape.feedForwardLength;
  const { random, matrix, constant } = tensorMakers(shape, seed);
  const norm = (name: string, length = nEmbd): GgufTensor => constant(name, length, 1);
  const bias = (name: string, length: number): GgufTensor[] =>
    shape.architecture === "qwen2" ? [random(name, [length], "F32")] : [];
  // Qwen3 normalizes each head's queries and keys before RoPE.
  const headNorms = (prefix: string): GgufTensor[] =>
    shape.architecture === "qwen3"
      ? [norm(`${prefix}.attn_q_norm.weight`, shape.headLength), norm(`${prefix}.attn_k_norm.weight`, shape.headLength)]
      : [];

  const tensors: GgufTensor[] = [
    matrix("token_embd.weight", [nEmbd, shape.vocabSize], "token_embd"),
    norm("output_norm.weight"),
  ];
  if (!shape.tiedEmbeddings) tensors.push(matrix("output.weight", [nEmbd, shape.vocabSize], "output"));
  // A Qwen3 reranker's head is the yes/no rows of its LM head, stacked as one output per label.
  if (shape.classifierLabels.length > 0)
    tensors.push(matrix("cls.output.weight", [nEmbd, shape.classifierLabels.length], "other", unitGainStd(nEmbd)));
  for (let block = 0; block < shape.blockCount; block++) {
    const prefix = `blk.${block}`;
    tensors.push(
      norm(`${prefix}.attn_norm.weight`),
      matrix(`${prefix}.attn_q.weight`, [nEmbd, nEmbdQ]),
      ...bias(`${prefix}.attn_q.bias`, nEmbdQ),
      matrix(`${prefix}.attn_k.weight`, [nEmbd, nEmbdKv], "attn_k"),
      ...bias(`${prefix}.attn_k.bias`, nEmbdKv),
      matrix(`${prefix}.attn_v.weight`, [nEmbd, nEmbdKv], "attn_v"),
      ...bias(`${prefix}.attn_v.bias`, nEmbdKv),
      matrix(`${prefix}.attn_output.weight`, [nEmbdQ, nEmbd]),
      ...headNorms(prefix),
      norm(`${prefix}.ffn_norm.weight`),
    );
    if (shape.expertCount === 0) {
      tensors.push(
        matrix(`${prefix}.ffn_gate.weight`, [nEmbd, nFf]),
        matrix(`${prefix}.ffn_up.weight`, [nEmbd, nFf]),
        matrix(`${prefix}.ffn_down.weight`, [nFf, nEmbd]),
      );
      continue;
    }
    const nExpert = shape.expertCount;
    tensors.push(
      // The router stays F32, as converters and llama-quantize leave it.
      random(`${prefix}.ffn_gate_inp.weight`, [nEmbd, nExpert], "F32"),
      matrix(`${prefix}.ffn_gate_exps.weight`, [nEmbd, nFf, nExpert]),
      matrix(`${prefix}.ffn_up_exps.weight`, [nEmbd, nFf, nExpert]),
      matrix(`${prefix}.ffn_down_exps.weight`, [nFf, nEmbd, nExpert]),
    );
  }
  return tensors;
}
