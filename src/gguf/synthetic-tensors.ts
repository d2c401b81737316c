/** The tensors of a synthetic model: which matrices, their shapes, and the encoding llama-quantize would give each. */
import type { EncodableTypeName, GgufTensor } from "./gguf-writer.ts";
import type { SyntheticModelShape } from "./synthetic-model.ts";
import { syntheticWeights, WEIGHT_STD } from "./synthetic-weights.ts";

type MatrixRole = "token_embd" | "output" | "attn_k" | "attn_v" | "other";

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
function randomTensor(name: string, dims: readonly number[], type: EncodableTypeName, seed: number): GgufTensor {
  const count = dims.reduce((product, dim) => product * dim, 1);
  return { name, dims, type, data: () => syntheticWeights(name, count, dims[0]!, seed, WEIGHT_STD) };
}

/** Every tensor of a model of this shape, in the order converters write them; values are generated when written. */
export function syntheticTensors(shape: SyntheticModelShape, seed: number): GgufTensor[] {
  const nEmbd = shape.embeddingLength;
  const nEmbdKv = (nEmbd / shape.headCount) * shape.headCountKv;
  const nFf = shape.feedForwardLength;
  const random = (name: string, dims: readonly number[], type: EncodableTypeName): GgufTensor =>
    randomTensor(name, dims, type, seed);
  const matrix = (name: string, dims: readonly number[], role: MatrixRole = "other"): GgufTensor =>
    random(name, dims, matrixType(shape, role));
  // Converters keep 1-D tensors in F32 regardless of the file type.
  const norm = (name: string): GgufTensor => ({
    name,
    dims: [nEmbd],
    type: "F32",
    data: () => new Float32Array(nEmbd).fill(1),
  });
  const bias = (name: string, length: number): GgufTensor[] =>
    shape.architecture === "qwen2" ? [random(name, [length], "F32")] : [];

  const tensors: GgufTensor[] = [
    matrix("token_embd.weight", [nEmbd, shape.vocabSize], "token_embd"),
    norm("output_norm.weight"),
  ];
  if (!shape.tiedEmbeddings) tensors.push(matrix("output.weight", [nEmbd, shape.vocabSize], "output"));
  for (let block = 0; block < shape.blockCount; block++) {
    const prefix = `blk.${block}`;
    tensors.push(
      norm(`${prefix}.attn_norm.weight`),
      matrix(`${prefix}.attn_q.weight`, [nEmbd, nEmbd]),
      ...bias(`${prefix}.attn_q.bias`, nEmbd),
      matrix(`${prefix}.attn_k.weight`, [nEmbd, nEmbdKv], "attn_k"),
      ...bias(`${prefix}.attn_k.bias`, nEmbdKv),
      matrix(`${prefix}.attn_v.weight`, [nEmbd, nEmbdKv], "attn_v"),
      ...bias(`${prefix}.attn_v.bias`, nEmbdKv),
      matrix(`${prefix}.attn_output.weight`, [nEmbd, nEmbd]),
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
