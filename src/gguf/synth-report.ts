/** What `pagoda synth` prints about a model: its shape, parameters and size, its tensors, the known shapes. */
import { formatBytes } from "./format-bytes.ts";
import { MODEL_SHAPES, type ModelShape } from "./model-shapes.ts";
import { RETRIEVAL_SHAPES } from "./retrieval-shapes.ts";
import type { SyntheticModelPlan } from "./synthetic-model.ts";
import type { QuantizedModelResult, QuantizedSynthType } from "./write-quantized-model.ts";

function formatCount(count: number): string {
  const scaled = count >= 1e9 ? `${(count / 1e9).toFixed(2)} B` : count >= 1e6 ? `${(count / 1e6).toFixed(2)} M` : null;
  return scaled === null ? count.toLocaleString("en-US") : `${scaled} (${count.toLocaleString("en-US")})`;
}

/** A size with its exact bytes beside it, as a file's size is worth knowing to the byte. */
export function withExactBytes(bytes: number): string {
  const rounded = formatBytes(bytes);
  return bytes < 1024 ? rounded : `${rounded} (${bytes.toLocaleString("en-US")} bytes)`;
}

/**
 * The banner that says the weights are random, then the shape, parameters and file size. With `quantizeTo`, `plan`
 * is the F16 model llama.cpp quantizes: the final tensor types and size are llama.cpp's to decide, so they are not
 * predicted here but reported after the quantization by {@link describeQuantizedResult}.
 */
export function describeSynthPlan(
  plan: SyntheticModelPlan,
  like: ModelShape | null,
  quantizeTo: QuantizedSynthType | null = null,
): string {
  const s = plan.shape;
  const layers = like !== null && like.blockCount !== s.blockCount ? ` (${like.name} has ${like.blockCount})` : "";
  const moe = s.expertCount === 0 ? "" : `, ${s.expertCount} experts (${s.expertUsedCount} used)`;
  const headLength = s.headLength * s.headCount === s.embeddingLength ? "" : ` of ${s.headLength}`;
  const types = [...new Set(plan.tensors.map((tensor) => tensor.type))].join(", ");
  const active =
    plan.activeParameterCount === plan.parameterCount
      ? ""
      : `, ${formatCount(plan.activeParameterCount)} active per token`;
  return [
    "SYNTHETIC MODEL: all weights are random, so its output is meaningless. Use it only to measure memory, load",
    "time and speed of this shape.",
    ...(like === null
      ? []
      : [`  like        ${like.name} (${like.source}); the vocabulary is synthetic, of the same size`]),
    `  shape       ${s.architecture}, vocab ${s.vocabSize}, dim ${s.embeddingLength}, layers ${s.blockCount}${layers}, ` +
      `heads ${s.headCount} (${s.headCountKv} kv)${headLength}, ffn ${s.feedForwardLength}${moe}, ` +
      `ctx ${s.contextLength}${s.tiedEmbeddings ? ", tied embeddings" : ""}`,
    ...(s.pooling === "none"
      ? []
      : [
          `  pooling     ${s.pooling}` +
            (s.classifierLabels.length === 0
              ? ""
              : `, classification head with ${s.classifierLabels.length} output(s): ${s.classifierLabels.join(", ")}`),
        ]),
    ...(s.chatTemplate === "chatml" ? [] : [`  template    ${s.chatTemplate} (ChatML turns with tool calling)`]),
    quantizeTo === null
      ? `  type        ${s.tensorType} (tensor types used: ${types})`
      : `  type        ${quantizeTo}: written at ${s.tensorType} (${types}), then quantized by llama.cpp, which picks each tensor's type`,
    `  parameters  ${formatCount(plan.parameterCount)}${active}`,
    quantizeTo === null
      ? `  file size   ${withExactBytes(plan.fileBytes)}`
      : `  file size   known after quantization; the temporary ${s.tensorType} file is ${withExactBytes(plan.fileBytes)}`,
    "",
  ].join("\n");
}

/** What a quantized synthetic model turned out to be: its size, the time of each stage, the tensor types. */
export function describeQuantizedResult(
  out: string,
  fileType: QuantizedSynthType,
  result: QuantizedModelResult,
): string {
  const seconds = (ms: number): string => (ms / 1000).toFixed(1);
  const types = [...result.tensorTypes].map(([type, count]) => `${type} ×${count}`).join(", ");
  return [
    `Wrote ${out} (${withExactBytes(result.fileBytes)}) in ${seconds(result.writeMs + result.quantizeMs)} s: ` +
      `${result.intermediate.shape.tensorType} written in ${seconds(result.writeMs)} s, then llama.cpp loaded and ` +
      `quantized it to ${fileType} in ${seconds(result.quantizeMs)} s.`,
    `  tensor types  ${types}`,
    "Remember: random weights, meaningless output.",
    "",
  ].join("\n");
}

/** Tensors outside the blocks, then block 0's; the other blocks repeat block 0. */
export function describeTensors(plan: SyntheticModelPlan): string {
  const shown = plan.tensors.filter((tensor) => !tensor.name.startsWith("blk.") || tensor.name.startsWith("blk.0."));
  const nameWidth = Math.max(...shown.map((tensor) => tensor.name.length));
  const lines = shown.map((tensor) => {
    const dims = `[${tensor.dims.join(", ")}]`;
    return `  ${tensor.name.padEnd(nameWidth)}  ${tensor.type.padEnd(4)}  ${dims.padEnd(24)}  ${withExactBytes(tensor.byteLength)}`;
  });
  // Right after block 0, as a classification head written after the blocks follows them.
  const afterBlock0 = shown.map((tensor) => tensor.name.startsWith("blk.0.")).lastIndexOf(true) + 1;
  if (plan.shape.blockCount > 1)
    lines.splice(afterBlock0, 0, `  blk.1 … blk.${plan.shape.blockCount - 1}: the same as blk.0`);
  return `Tensors (${plan.tensors.length}):\n${lines.join("\n")}\n`;
}

/** Rows of cells as columns padded to their widest cell. */
function formatTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The --like tables: generative models, then embedding and rerank models with their pooling and head. */
export function describeShapes(): string {
  const generative = formatTable(
    ["name", "arch", "vocab", "dim", "layers", "heads", "kv", "ffn", "experts", "ctx", "source"],
    MODEL_SHAPES.map((shape) =>
      [
        shape.name,
        shape.architecture,
        shape.vocabSize,
        shape.embeddingLength,
        shape.blockCount,
        shape.headCount,
        shape.headCountKv,
        shape.feedForwardLength,
        shape.expertCount === 0 ? "-" : `${shape.expertCount}/${shape.expertUsedCount}`,
        shape.contextLength,
        shape.source,
      ].map(String),
    ),
  );
  const retrieval = formatTable(
    ["name", "arch", "vocab", "dim", "layers", "heads", "kv", "head", "ffn", "ctx", "pooling", "outputs", "source"],
    RETRIEVAL_SHAPES.map((shape) =>
      [
        shape.name,
        shape.architecture,
        shape.vocabSize,
        shape.embeddingLength,
        shape.blockCount,
        shape.headCount,
        shape.headCountKv,
        shape.headLength ?? shape.embeddingLength / shape.headCount,
        shape.feedForwardLength,
        shape.contextLength,
        shape.pooling ?? "-",
        shape.classifierLabels === undefined ? "-" : shape.classifierLabels.join("/"),
        shape.source,
      ].map(String),
    ),
  );
  return `${[...generative, "", "Embedding and rerank models:", ...retrieval].join("\n")}\n`;
}
