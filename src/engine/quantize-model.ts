/**
 * llama.cpp's own quantiser (`llama_model_quantize`, what llama-quantize runs) applied to a GGUF file, so pagoda can
 * produce the K-quant mixes users serve (Q4_K_M, Q6_K) without a llama.cpp checkout. The stock node-llama-cpp addon
 * does not bind it: `quantizeModel` exists only in the addon built with pagoda's patch (tools/build-addon.ts).
 */
import os from "node:os";
import { loadLlama } from "./llama-loader.ts";

/** llama-quantize's names of the file types the patched addon accepts. */
export const QUANTIZE_FILE_TYPES = ["Q4_0", "Q8_0", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"] as const;
export type QuantizeFileType = (typeof QUANTIZE_FILE_TYPES)[number];

export interface QuantizeModelOptions {
  /** The mix to produce, as llama-quantize names it (its per-tensor choices included, e.g. Q6_K output for Q4_K_M). */
  readonly fileType: QuantizeFileType;
  /** Threads quantising rows. Defaults to `os.availableParallelism()`. */
  readonly threads?: number;
}

export type QuantizeModelErrorCode = "PAGODA_ERR_ADDON_NOT_PATCHED" | "PAGODA_ERR_QUANTIZE_FAILED";

export class QuantizeModelError extends Error {
  override readonly name = "QuantizeModelError";
  readonly code: QuantizeModelErrorCode;

  constructor(code: QuantizeModelErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

type NativeQuantizeModel = (
  inputPath: string,
  outputPath: string,
  fileType: QuantizeFileType,
  threads: number,
) => Promise<void>;

async function nativeQuantizeModel(): Promise<NativeQuantizeModel> {
  const llama: unknown = await loadLlama("false");
  const bindings =
    typeof llama === "object" && llama !== null ? (llama as Record<string, unknown>)._bindings : undefined;
  const quantize =
    typeof bindings === "object" && bindings !== null ? (bindings as Record<string, unknown>).quantizeModel : undefined;
  if (typeof quantize !== "function")
    throw new QuantizeModelError(
      "PAGODA_ERR_ADDON_NOT_PATCHED",
      "the loaded llama.cpp addon cannot quantize models (quantizeModel is missing): run `npm run build:addon` to " +
        "build pagoda's patched addon",
    );
  return quantize as NativeQuantizeModel;
}

/**
 * Quantizes the F32/F16 GGUF at `inputPath` into a new file at `outputPath`, off the JS thread. llama.cpp writes
 * the output in place (not atomically) and logs why it failed only to its log, at error level.
 */
export async function quantizeModel(
  inputPath: string,
  outputPath: string,
  options: QuantizeModelOptions,
): Promise<void> {
  if (!QUANTIZE_FILE_TYPES.includes(options.fileType))
    throw new RangeError(`unknown file type ${String(options.fileType)}; known: ${QUANTIZE_FILE_TYPES.join(", ")}`);
  const threads = options.threads ?? os.availableParallelism();
  if (!Number.isSafeInteger(threads) || threads < 1)
    throw new RangeError(`threads must be a positive integer, got ${threads}`);
  const quantize = await nativeQuantizeModel();
  try {
    await quantize(inputPath, outputPath, options.fileType, threads);
  } catch (error) {
    throw new QuantizeModelError(
      "PAGODA_ERR_QUANTIZE_FAILED",
      // The addon's message names both files and the return code; the reason is only in llama.cpp's log.
      error instanceof Error ? error.message : `llama_model_quantize failed: ${String(error)}`,
      { cause: error },
    );
  }
}
