/**
 * Synthetic models in llama.cpp's K-quant mixes (Q4_K_M, Q6_K), the files users actually serve. pagoda's writer
 * cannot encode K-quants, so the model is written at F16 beside the output and quantized by llama.cpp itself, which
 * picks each tensor's type exactly as llama-quantize would (Q6_K output and some attn_v/ffn_down in Q4_K_M, and its
 * fallbacks for rows that are not a multiple of 256). The quantiser is passed in, so this module needs no native code.
 */
import { rename, rm, stat } from "node:fs/promises";
import { ggmlTypeInfo } from "./ggml-types.ts";
import { readGgufHeader } from "./gguf-reader.ts";
import {
  type SyntheticModelOptions,
  type SyntheticModelPlan,
  syntheticModelLabel,
  syntheticModelSpec,
  writeSyntheticModel,
} from "./synthetic-model.ts";

/** The llama.cpp file types `pagoda synth` produces through llama.cpp's quantiser, as llama-quantize names them. */
export const QUANTIZED_SYNTH_TYPES = ["Q4_K_M", "Q6_K"] as const;
export type QuantizedSynthType = (typeof QUANTIZED_SYNTH_TYPES)[number];

/** Quantizes the F16 GGUF at `inputPath` into a new file at `outputPath`; rejects when llama.cpp fails. */
export type ModelQuantizer = (inputPath: string, outputPath: string, fileType: QuantizedSynthType) => Promise<void>;

/** The type the model is written at before llama.cpp quantizes it; random weights lose nothing at F16. */
export const INTERMEDIATE_TYPE = "F16";

export interface QuantizedModelResult {
  /** The F16 model that was written and then quantized. */
  readonly intermediate: SyntheticModelPlan;
  /** Size of the quantized file. */
  readonly fileBytes: number;
  /** How many tensors llama.cpp stored in each ggml type, most frequent first ("Q4_K" → 15). */
  readonly tensorTypes: ReadonlyMap<string, number>;
  readonly writeMs: number;
  /** The quantiser's whole call: loading llama.cpp (seconds on first use) included. */
  readonly quantizeMs: number;
}

async function countTensorTypes(path: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const tensor of (await readGgufHeader(path)).tensors) {
    const name = ggmlTypeInfo(tensor.ggmlType).name;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return new Map([...counts].sort((a, b) => b[1] - a[1]));
}

/**
 * Writes the synthetic model of `options` at F16 to a temporary sibling of `path`, quantizes it to `fileType` into
 * another temporary sibling and renames that into place, so `path` is never a partial file. Both temporary files
 * are removed whatever happens. `onProgress` gets the bytes of the F16 file written so far.
 */
export async function writeQuantizedSyntheticModel(
  path: string,
  options: SyntheticModelOptions,
  fileType: QuantizedSynthType,
  quantize: ModelQuantizer,
  onProgress?: (writtenBytes: number) => void,
): Promise<QuantizedModelResult> {
  const intermediatePath = `${path}.${process.pid}.f16.tmp`;
  const quantizedPath = `${path}.${process.pid}.quantized.tmp`;
  // general.name says what the file is; llama.cpp rewrites general.file_type itself.
  const label = options.label ?? syntheticModelLabel(syntheticModelSpec(options).shape, fileType);
  try {
    const startedMs = performance.now();
    const intermediate = await writeSyntheticModel(
      intermediatePath,
      { ...options, tensorType: INTERMEDIATE_TYPE, label },
      onProgress,
    );
    const writtenMs = performance.now();
    await quantize(intermediatePath, quantizedPath, fileType);
    const quantizeMs = performance.now() - writtenMs;
    await rename(quantizedPath, path);
    return {
      intermediate,
      fileBytes: (await stat(path)).size,
      tensorTypes: await countTensorTypes(path),
      writeMs: writtenMs - startedMs,
      quantizeMs,
    };
  } finally {
    await Promise.all([rm(intermediatePath, { force: true }), rm(quantizedPath, { force: true })]);
  }
}
