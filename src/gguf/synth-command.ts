/**
 * `pagoda synth`: writes a GGUF with a real model's shape and random weights, so memory, load time and speed can
 * be measured without downloading the model. The output of such a model is meaningless, and the command says so.
 */
import { deriveDraftModel } from "./derive-draft.ts";
import { formatBytes } from "./format-bytes.ts";
import {
  type DeriveRequest,
  parseSynthArgs,
  type SynthArgs,
  type SynthRequest,
  SynthUsageError,
  type WidenRequest,
} from "./synth-args.ts";
import {
  describeQuantizedResult,
  describeShapes,
  describeSynthPlan,
  describeTensors,
  withExactBytes,
} from "./synth-report.ts";
import { planSyntheticModel, type SyntheticModelPlan, writeSyntheticModel } from "./synthetic-model.ts";
import { DEFAULT_PERTURBATION, widenFeedForward } from "./widen-ffn.ts";
import { type ModelQuantizer, writeQuantizedSyntheticModel } from "./write-quantized-model.ts";

/** Where the command prints; tests capture it, the CLI passes the process streams. */
export interface SynthCommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const PROCESS_IO: SynthCommandIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const USAGE = `Usage:
  pagoda synth --like <shape> [--type q4_0|q8_0|f16|f32|q4_k_m|q6_k] [--layers N] [--chat-template …] [--seed N]
               (--out <file.gguf> | --dry-run)
  pagoda synth [--arch llama|qwen2|qwen3|bert] [--vocab N] [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ffn N]
               [--ctx N] [--experts N --experts-used N] [--tied] [--type …] [--seed N]
               [--chat-template chatml|hermes-tools|llama3-tools] (--out <file.gguf> | --dry-run)
  pagoda synth --list
  pagoda synth --derive-from <model.gguf> --keep-layers N --out <draft.gguf>
  pagoda synth --widen-from <model.gguf> --ffn N [--perturbation 0.02] [--seed N] --out <target.gguf>

Writes a GGUF model with random weights: its output is meaningless. It is for measuring memory, load time and
speed of a model shape without downloading the model. --type defaults to q4_0. q4_k_m and q6_k are written at
f16 to a temporary file beside the output, then quantized by llama.cpp's own quantiser (the patched addon, see
npm run build:addon), which picks each tensor's type as llama-quantize does. --dry-run prints the tensors and
the file size without writing. Dimension flags override the --like shape; without --like, unset dimensions
come from a small default shape.

Embedding and rerank shapes (see --list) write a bert encoder with a WordPiece vocabulary and a pooling type
(mean, or cls for bge-small-en-v1.5), a bert cross-encoder with a classification head (cls, cls.output; rank
pooling), or a Qwen3-style reranker: qwen3 with a two-output cls.output ("yes", "no"), rank pooling and the rerank
prompt template llama-server reads (tokenizer.chat_template.rerank). --arch bert without --like writes a mean-pooled
encoder of the default shape.

--chat-template picks the model's chat template: chatml (the default) has no tools; hermes-tools calls tools
in <tool_call> blocks as Qwen2.5 and Hermes do (adding <tool_call> and </tool_call> to the vocabulary), and
llama3-tools answers a call with a bare {"name": …, "parameters": …} as Llama 3.1 does.

--derive-from writes no random weights: it copies the first N transformer blocks of a real model, with its
tokenizer, embeddings and output head, as a draft model for speculative decoding with that model.

--widen-from writes a costlier target for a real model used as the draft: every block's feed-forward widened
to --ffn hidden units. The source's weights are kept; the extra units get seeded random weights whose output is
scaled by --perturbation (default ${DEFAULT_PERTURBATION}; 0 adds exactly nothing), so the target's output is
the source's plus a small perturbation. Only F32 and F16 feed-forward weights can be widened.
`;

/** Reports progress in 10% steps, and only for files big enough to take a while. */
function progressReporter(io: SynthCommandIo, totalBytes: number): ((writtenBytes: number) => void) | undefined {
  if (totalBytes < 256 * 1024 * 1024) return undefined;
  let reported = 0;
  return (writtenBytes) => {
    const percent = Math.floor((writtenBytes / totalBytes) * 10) * 10;
    if (percent > reported) {
      reported = percent;
      io.stderr(`  ${percent}% (${formatBytes(writtenBytes)})\n`);
    }
  };
}

async function runDerive(request: DeriveRequest, io: SynthCommandIo): Promise<number> {
  let report: ((writtenBytes: number) => void) | undefined;
  try {
    const result = await deriveDraftModel(request.source, request.out, {
      keepLayers: request.keepLayers,
      onProgress: (writtenBytes, totalBytes) => {
        report ??= progressReporter(io, totalBytes) ?? (() => undefined);
        report(writtenBytes);
      },
    });
    io.stdout(
      [
        `Wrote ${request.out}: the first ${result.keptLayers} of ${result.sourceLayers} transformer blocks of ` +
          `${request.source}, ${result.numTensors} tensors, ${withExactBytes(result.outBytes)}.`,
        "The draft shares the source's tokenizer and vocabulary (all tokenizer metadata copied unchanged), its token",
        "embeddings and its output head, so it can propose tokens for the source as a speculative-decoding draft.",
        "",
      ].join("\n"),
    );
    return EXIT_OK;
  } catch (error) {
    io.stderr(
      `pagoda synth: could not derive a draft from ${request.source}: ${
        error instanceof Error ? error.message : String(error)
      }\n`,
    );
    return EXIT_FAILED;
  }
}

async function runWiden(request: WidenRequest, io: SynthCommandIo): Promise<number> {
  let report: ((writtenBytes: number) => void) | undefined;
  try {
    const result = await widenFeedForward(request.source, request.out, {
      feedForwardLength: request.feedForwardLength,
      perturbation: request.perturbation,
      seed: request.seed,
      onProgress: (writtenBytes, totalBytes) => {
        report ??= progressReporter(io, totalBytes) ?? (() => undefined);
        report(writtenBytes);
      },
    });
    io.stdout(
      [
        `Wrote ${request.out}: ${request.source} with every block's feed-forward widened from ` +
          `${result.sourceFeedForward} to ${result.feedForwardLength} hidden units, ${withExactBytes(result.outBytes)} ` +
          `(source ${withExactBytes(result.sourceBytes)}).`,
        `Its output is the source model's plus a perturbation (scale ${request.perturbation}, seed ${request.seed}` +
          `${request.perturbation === 0 ? ": exactly none" : ""}): the source's weights are kept and the extra`,
        "units are random. Use the source as its speculative-decoding draft; it shares the tokenizer and vocabulary.",
        "",
      ].join("\n"),
    );
    return EXIT_OK;
  } catch (error) {
    io.stderr(
      `pagoda synth: could not widen ${request.source}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return EXIT_FAILED;
  }
}

/** Writes the model at F16 and has llama.cpp quantize it; `plan` is the F16 model's. */
async function runQuantizedSynth(
  request: SynthRequest,
  plan: SyntheticModelPlan,
  io: SynthCommandIo,
  quantize: ModelQuantizer | null,
): Promise<number> {
  const out = request.out!;
  const fileType = request.quantizeTo!;
  if (quantize === null) {
    io.stderr(`pagoda synth: --type ${fileType.toLowerCase()} needs llama.cpp's quantiser, which was not provided\n`);
    return EXIT_FAILED;
  }
  try {
    const result = await writeQuantizedSyntheticModel(
      out,
      request.options,
      fileType,
      quantize,
      progressReporter(io, plan.fileBytes),
    );
    io.stdout(describeQuantizedResult(out, fileType, result));
    return EXIT_OK;
  } catch (error) {
    io.stderr(`pagoda synth: could not write ${out}: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT_FAILED;
  }
}

/** Prints the plan, then writes the model unless it is a dry run. */
async function runSynth(
  request: SynthRequest,
  plan: SyntheticModelPlan,
  io: SynthCommandIo,
  quantize: ModelQuantizer | null,
): Promise<number> {
  io.stdout(describeSynthPlan(plan, request.like, request.quantizeTo));
  if (request.isDryRun) {
    if (request.quantizeTo !== null) io.stdout(`The ${plan.shape.tensorType} file llama.cpp would quantize:\n`);
    io.stdout(describeTensors(plan));
    if (request.out !== null) io.stdout(`Dry run: nothing written to ${request.out}.\n`);
    return EXIT_OK;
  }
  if (request.quantizeTo !== null) return await runQuantizedSynth(request, plan, io, quantize);
  const out = request.out!;
  const startedMs = performance.now();
  try {
    await writeSyntheticModel(out, request.options, progressReporter(io, plan.fileBytes));
  } catch (error) {
    io.stderr(`pagoda synth: could not write ${out}: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT_FAILED;
  }
  const seconds = ((performance.now() - startedMs) / 1000).toFixed(1);
  io.stdout(
    `Wrote ${out} (${withExactBytes(plan.fileBytes)}) in ${seconds} s. Remember: random weights, meaningless output.\n`,
  );
  return EXIT_OK;
}

/**
 * Runs `pagoda synth` with the arguments after "synth"; resolves to the exit code (2 for bad arguments). `quantize`
 * is llama.cpp's quantiser, which --type q4_k_m and q6_k need; the caller passes it so this module stays free of
 * native code.
 */
export async function runSynthCommand(
  argv: string[],
  io: SynthCommandIo = PROCESS_IO,
  quantize: ModelQuantizer | null = null,
): Promise<number> {
  let args: SynthArgs;
  let plan: SyntheticModelPlan | null = null;
  try {
    args = parseSynthArgs(argv);
    if (args.kind === "synth") plan = planSyntheticModel(args.request.options);
  } catch (error) {
    // parseArgs rejects unknown flags and missing values with TypeErrors; the shape checks throw RangeErrors.
    if (error instanceof SynthUsageError || error instanceof TypeError || error instanceof RangeError) {
      io.stderr(`pagoda synth: ${error.message}\n\n${USAGE}`);
      return EXIT_USAGE;
    }
    throw error;
  }
  switch (args.kind) {
    case "help":
      io.stdout(USAGE);
      return EXIT_OK;
    case "list":
      io.stdout(describeShapes());
      return EXIT_OK;
    case "widen":
      return await runWiden(args.request, io);
    case "derive":
      return await runDerive(args.request, io);
    case "synth":
      return await runSynth(args.request, plan!, io, quantize);
  }
}
