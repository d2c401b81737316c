/**
 * `pagoda synth`: writes a GGUF with a real model's shape and random weights, so memory, load time and speed can
 * be measured without downloading the model. The output of such a model is meaningless, and the command says so.
 */
import { parseArgs } from "node:util";
import { deriveDraftModel } from "./derive-draft.ts";
import { formatBytes } from "./format-bytes.ts";
import { ENCODABLE_TYPES } from "./gguf-writer.ts";
import { findModelShape, MODEL_SHAPES, type ModelShape } from "./model-shapes.ts";
import {
  planSyntheticModel,
  type SyntheticArchitecture,
  type SyntheticModelOptions,
  type SyntheticModelPlan,
  type SyntheticTensorType,
  writeSyntheticModel,
} from "./synthetic-model.ts";
import { DEFAULT_PERTURBATION, widenFeedForward } from "./widen-ffn.ts";

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
const DEFAULT_TYPE: SyntheticTensorType = "Q4_0";
const TYPES: Readonly<Record<string, SyntheticTensorType>> = Object.fromEntries(
  ENCODABLE_TYPES.map((type) => [type.toLowerCase(), type]),
);
const ARCHITECTURES: readonly SyntheticArchitecture[] = ["llama", "qwen2"];

/** Flags that set one numeric shape field; they override `--like`, or the small default shape without it. */
const DIMENSION_FLAGS = {
  vocab: "vocabSize",
  dim: "embeddingLength",
  layers: "blockCount",
  heads: "headCount",
  "kv-heads": "headCountKv",
  ffn: "feedForwardLength",
  ctx: "contextLength",
  experts: "expertCount",
  "experts-used": "expertUsedCount",
} as const satisfies Record<string, keyof SyntheticModelOptions>;

const USAGE = `Usage:
  pagoda synth --like <shape> [--type q4_0|q8_0|f16|f32] [--layers N] [--seed N] (--out <file.gguf> | --dry-run)
  pagoda synth [--arch llama|qwen2] [--vocab N] [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ffn N]
               [--ctx N] [--experts N --experts-used N] [--tied] [--type …] [--seed N] (--out <file.gguf> | --dry-run)
  pagoda synth --list
  pagoda synth --derive-from <model.gguf> --keep-layers N --out <draft.gguf>
  pagoda synth --widen-from <model.gguf> --ffn N [--perturbation 0.02] [--seed N] --out <target.gguf>

Writes a GGUF model with random weights: its output is meaningless. It is for measuring memory, load time and
speed of a model shape without downloading the model. --type defaults to q4_0. --dry-run prints the tensors and
the file size without writing. Dimension flags override the --like shape; without --like, unset dimensions
come from a small default shape.

--derive-from writes no random weights: it copies the first N transformer blocks of a real model, with its
tokenizer, embeddings and output head, as a draft model for speculative decoding with that model.

--widen-from writes a costlier target for a real model used as the draft: every block's feed-forward widened
to --ffn hidden units. The source's weights are kept; the extra units get seeded random weights whose output is
scaled by --perturbation (default ${DEFAULT_PERTURBATION}; 0 adds exactly nothing), so the target's output is
the source's plus a small perturbation. Only F32 and F16 feed-forward weights can be widened.
`;

/** Flags that describe a synthetic model, so they make no sense when deriving a draft from a real one. */
const SYNTH_ONLY_FLAGS = ["like", "type", "arch", "tied", "seed", "dry-run", ...Object.keys(DIMENSION_FLAGS)];

class UsageError extends Error {
  override readonly name = "UsageError";
  readonly code = "PAGODA_ERR_SYNTH_USAGE";
}

interface SynthRequest {
  options: SyntheticModelOptions;
  like: ModelShape | null;
  out: string | null;
  isDryRun: boolean;
}

interface WidenRequest {
  source: string;
  feedForwardLength: number;
  perturbation: number;
  seed: number;
  out: string;
}

interface DeriveRequest {
  source: string;
  keepLayers: number;
  out: string;
}

function parseInteger(flag: string, text: string, minimum: number): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(value) || value < minimum)
    throw new UsageError(`--${flag} must be an integer of at least ${minimum}, got "${text}"`);
  return value;
}

function parseRequest(values: Record<string, string | boolean | undefined>): SynthRequest {
  const likeName = typeof values.like === "string" ? values.like : undefined;
  const like = likeName === undefined ? null : findModelShape(likeName);
  if (likeName !== undefined && like === null)
    throw new UsageError(
      `--like: unknown shape "${likeName}"; known: ${MODEL_SHAPES.map((shape) => shape.name).join(", ")}`,
    );
  const typeText = typeof values.type === "string" ? values.type.toLowerCase() : undefined;
  const tensorType = typeText === undefined ? DEFAULT_TYPE : TYPES[typeText];
  if (tensorType === undefined)
    throw new UsageError(`--type must be one of ${Object.keys(TYPES).join(", ")}, got "${String(values.type)}"`);
  const architecture = values.arch as SyntheticArchitecture | undefined;
  if (architecture !== undefined && !ARCHITECTURES.includes(architecture))
    throw new UsageError(`--arch must be one of ${ARCHITECTURES.join(", ")}, got "${architecture}"`);

  const options: SyntheticModelOptions = { ...(like ?? {}), tensorType };
  const overridden: string[] = [];
  for (const [flag, key] of Object.entries(DIMENSION_FLAGS)) {
    const text = values[flag];
    if (typeof text !== "string") continue;
    options[key] = parseInteger(flag, text, key === "expertCount" || key === "expertUsedCount" ? 0 : 1);
    if (like === null || options[key] !== like[key]) overridden.push(flag);
  }
  if (architecture !== undefined && architecture !== like?.architecture) {
    options.architecture = architecture;
    overridden.push("arch");
  }
  if (values.tied === true && like?.tiedEmbeddings !== true) {
    options.tiedEmbeddings = true;
    overridden.push("tied");
  }
  // Turning experts off without saying how many are used should just work.
  if (options.expertCount === 0 && values["experts-used"] === undefined) options.expertUsedCount = 0;
  if (typeof values.seed === "string") options.seed = parseInteger("seed", values.seed, 0);
  if (like !== null) {
    const layers = overridden.length === 1 && overridden[0] === "layers" ? `-l${options.blockCount}` : null;
    // Anything beyond a layer count is not that model any more, so the name spells the shape out instead.
    if (overridden.length === 0 || layers !== null)
      options.label = `${like.name}${layers ?? ""}-${tensorType.toLowerCase()}`;
  }

  const out = typeof values.out === "string" ? values.out : null;
  const isDryRun = values["dry-run"] === true;
  if (out === null && !isDryRun)
    throw new UsageError("--out <file.gguf> is required (or --dry-run to only print the plan)");
  return { options, like, out, isDryRun };
}

function parseDeriveRequest(values: Record<string, string | boolean | undefined>): DeriveRequest {
  const conflicting = SYNTH_ONLY_FLAGS.filter((flag) => values[flag] !== undefined);
  if (conflicting.length > 0)
    throw new UsageError(
      `--derive-from copies the source's shape and weights; it cannot be combined with ${conflicting
        .map((flag) => `--${flag}`)
        .join(", ")}${conflicting.includes("layers") ? " (use --keep-layers)" : ""}`,
    );
  const source = values["derive-from"];
  if (typeof source !== "string") throw new UsageError("--keep-layers needs --derive-from <model.gguf>");
  const keepLayers = values["keep-layers"];
  if (typeof keepLayers !== "string")
    throw new UsageError("--derive-from needs --keep-layers N, the number of transformer blocks to keep");
  if (typeof values.out !== "string") throw new UsageError("--out <draft.gguf> is required");
  return { source, keepLayers: parseInteger("keep-layers", keepLayers, 1), out: values.out };
}

/** Flags of a synthetic model that --widen-from cannot take (it keeps --ffn and --seed). */
const NOT_WITH_WIDEN = [
  ...SYNTH_ONLY_FLAGS.filter((flag) => flag !== "ffn" && flag !== "seed"),
  "derive-from",
  "keep-layers",
];

function parseWidenRequest(values: Record<string, string | boolean | undefined>): WidenRequest {
  const conflicting = NOT_WITH_WIDEN.filter((flag) => values[flag] !== undefined);
  if (conflicting.length > 0)
    throw new UsageError(
      `--widen-from copies the source's shape and weights; it cannot be combined with ${conflicting
        .map((flag) => `--${flag}`)
        .join(", ")}`,
    );
  const source = values["widen-from"];
  if (typeof source !== "string") throw new UsageError("--perturbation needs --widen-from <model.gguf>");
  if (typeof values.ffn !== "string")
    throw new UsageError("--widen-from needs --ffn N, the target's feed-forward hidden size");
  if (typeof values.out !== "string") throw new UsageError("--out <target.gguf> is required");
  const perturbationText = typeof values.perturbation === "string" ? values.perturbation : String(DEFAULT_PERTURBATION);
  const perturbation = Number(perturbationText);
  if (perturbationText.trim() === "" || !Number.isFinite(perturbation) || perturbation < 0)
    throw new UsageError(`--perturbation must be a number of at least 0, got "${perturbationText}"`);
  return {
    source,
    feedForwardLength: parseInteger("ffn", values.ffn, 1),
    perturbation,
    seed: typeof values.seed === "string" ? parseInteger("seed", values.seed, 0) : 0,
    out: values.out,
  };
}

function formatCount(count: number): string {
  const scaled = count >= 1e9 ? `${(count / 1e9).toFixed(2)} B` : count >= 1e6 ? `${(count / 1e6).toFixed(2)} M` : null;
  return scaled === null ? count.toLocaleString("en-US") : `${scaled} (${count.toLocaleString("en-US")})`;
}

/** A size with its exact bytes beside it, as a file's size is worth knowing to the byte. */
function withExactBytes(bytes: number): string {
  const rounded = formatBytes(bytes);
  return bytes < 1024 ? rounded : `${rounded} (${bytes.toLocaleString("en-US")} bytes)`;
}

function describePlan(plan: SyntheticModelPlan, like: ModelShape | null): string {
  const s = plan.shape;
  const layers = like !== null && like.blockCount !== s.blockCount ? ` (${like.name} has ${like.blockCount})` : "";
  const moe = s.expertCount === 0 ? "" : `, ${s.expertCount} experts (${s.expertUsedCount} used)`;
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
      `heads ${s.headCount} (${s.headCountKv} kv), ffn ${s.feedForwardLength}${moe}, ctx ${s.contextLength}` +
      (s.tiedEmbeddings ? ", tied embeddings" : ""),
    `  type        ${s.tensorType} (tensor types used: ${types})`,
    `  parameters  ${formatCount(plan.parameterCount)}${active}`,
    `  file size   ${withExactBytes(plan.fileBytes)}`,
    "",
  ].join("\n");
}

/** Tensors outside the blocks, then block 0's; the other blocks repeat block 0. */
function describeTensors(plan: SyntheticModelPlan): string {
  const shown = plan.tensors.filter((tensor) => !tensor.name.startsWith("blk.") || tensor.name.startsWith("blk.0."));
  const nameWidth = Math.max(...shown.map((tensor) => tensor.name.length));
  const lines = shown.map((tensor) => {
    const dims = `[${tensor.dims.join(", ")}]`;
    return `  ${tensor.name.padEnd(nameWidth)}  ${tensor.type.padEnd(4)}  ${dims.padEnd(24)}  ${withExactBytes(tensor.byteLength)}`;
  });
  if (plan.shape.blockCount > 1) lines.push(`  blk.1 … blk.${plan.shape.blockCount - 1}: the same as blk.0`);
  return `Tensors (${plan.tensors.length}):\n${lines.join("\n")}\n`;
}

function describeShapes(): string {
  const header = ["name", "arch", "vocab", "dim", "layers", "heads", "kv", "ffn", "experts", "ctx", "source"];
  const rows = MODEL_SHAPES.map((shape) =>
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
  );
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

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

/** Runs `pagoda synth` with the arguments after "synth"; resolves to the exit code (2 for bad arguments). */
export async function runSynthCommand(argv: string[], io: SynthCommandIo = PROCESS_IO): Promise<number> {
  let request: SynthRequest;
  let plan: SyntheticModelPlan;
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        like: { type: "string" },
        type: { type: "string" },
        out: { type: "string" },
        seed: { type: "string" },
        arch: { type: "string" },
        tied: { type: "boolean" },
        list: { type: "boolean" },
        "derive-from": { type: "string" },
        "keep-layers": { type: "string" },
        "widen-from": { type: "string" },
        perturbation: { type: "string" },
        "dry-run": { type: "boolean" },
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(Object.keys(DIMENSION_FLAGS).map((flag) => [flag, { type: "string" as const }])),
      },
    });
    if (values.help === true) {
      io.stdout(USAGE);
      return EXIT_OK;
    }
    if (values.list === true) {
      io.stdout(describeShapes());
      return EXIT_OK;
    }
    // runWiden and runDerive report their own failures, so only bad arguments reach the catch below.
    if (values["widen-from"] !== undefined || values.perturbation !== undefined)
      return await runWiden(parseWidenRequest(values), io);
    if (values["derive-from"] !== undefined || values["keep-layers"] !== undefined)
      return await runDerive(parseDeriveRequest(values), io);
    request = parseRequest(values);
    plan = planSyntheticModel(request.options);
  } catch (error) {
    // parseArgs rejects unknown flags and missing values with TypeErrors; the shape checks throw RangeErrors.
    if (error instanceof UsageError || error instanceof TypeError || error instanceof RangeError) {
      io.stderr(`pagoda synth: ${error.message}\n\n${USAGE}`);
      return EXIT_USAGE;
    }
    throw error;
  }

  io.stdout(describePlan(plan, request.like));
  if (request.isDryRun) {
    io.stdout(describeTensors(plan));
    if (request.out !== null) io.stdout(`Dry run: nothing written to ${request.out}.\n`);
    return EXIT_OK;
  }
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
