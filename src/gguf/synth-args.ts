/** The arguments of `pagoda synth`, parsed into what to do: write a synthetic model, derive a draft or a wider target. */
import { parseArgs } from "node:util";
import { ENCODABLE_TYPES } from "./gguf-writer.ts";
import { findModelShape, type ModelShape, modelShapeNames } from "./model-shapes.ts";
import { SYNTHETIC_CHAT_TEMPLATES, type SyntheticChatTemplate } from "./synthetic-chat-templates.ts";
import {
  SYNTHETIC_ARCHITECTURES,
  type SyntheticArchitecture,
  type SyntheticModelOptions,
  type SyntheticTensorType,
} from "./synthetic-model.ts";
import { DEFAULT_PERTURBATION } from "./widen-ffn.ts";
import { INTERMEDIATE_TYPE, QUANTIZED_SYNTH_TYPES, type QuantizedSynthType } from "./write-quantized-model.ts";

/** A --type: one pagoda's writer encodes, or a llama.cpp mix written at F16 and then quantized by llama.cpp. */
type SynthType =
  | { readonly tensorType: SyntheticTensorType; readonly quantizeTo: null }
  | { readonly tensorType: typeof INTERMEDIATE_TYPE; readonly quantizeTo: QuantizedSynthType };

const DEFAULT_TYPE: SynthType = { tensorType: "Q4_0", quantizeTo: null };
const TYPES: Readonly<Record<string, SynthType>> = Object.fromEntries([
  ...ENCODABLE_TYPES.map((type): [string, SynthType] => [type.toLowerCase(), { tensorType: type, quantizeTo: null }]),
  ...QUANTIZED_SYNTH_TYPES.map((type): [string, SynthType] => [
    type.toLowerCase(),
    { tensorType: INTERMEDIATE_TYPE, quantizeTo: type },
  ]),
]);

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

/** Flags that describe a synthetic model, so they make no sense when deriving a draft from a real one. */
const SYNTH_ONLY_FLAGS = [
  "like",
  "type",
  "arch",
  "tied",
  "chat-template",
  "seed",
  "dry-run",
  ...Object.keys(DIMENSION_FLAGS),
];

/** Bad arguments: reported with the usage and exit code 2. */
export class SynthUsageError extends Error {
  override readonly name = "SynthUsageError";
  readonly code = "PAGODA_ERR_SYNTH_USAGE";
}

export interface SynthRequest {
  /** The model pagoda's writer produces: the whole file, or the F16 input of llama.cpp's quantiser. */
  options: SyntheticModelOptions;
  /** The llama.cpp file type to quantize the written model to, or null to keep it as written. */
  quantizeTo: QuantizedSynthType | null;
  like: ModelShape | null;
  out: string | null;
  isDryRun: boolean;
}

export interface WidenRequest {
  source: string;
  feedForwardLength: number;
  perturbation: number;
  seed: number;
  out: string;
}

export interface DeriveRequest {
  source: string;
  keepLayers: number;
  out: string;
}

function parseInteger(flag: string, text: string, minimum: number): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(value) || value < minimum)
    throw new SynthUsageError(`--${flag} must be an integer of at least ${minimum}, got "${text}"`);
  return value;
}

function parseRequest(values: Record<string, string | boolean | undefined>): SynthRequest {
  const likeName = typeof values.like === "string" ? values.like : undefined;
  const like = likeName === undefined ? null : findModelShape(likeName);
  if (likeName !== undefined && like === null)
    throw new SynthUsageError(`--like: unknown shape "${likeName}"; known: ${modelShapeNames().join(", ")}`);
  const typeText = typeof values.type === "string" ? values.type.toLowerCase() : undefined;
  const type = typeText === undefined ? DEFAULT_TYPE : TYPES[typeText];
  if (type === undefined)
    throw new SynthUsageError(`--type must be one of ${Object.keys(TYPES).join(", ")}, got "${String(values.type)}"`);
  const architecture = values.arch as SyntheticArchitecture | undefined;
  if (architecture !== undefined && !SYNTHETIC_ARCHITECTURES.includes(architecture))
    throw new SynthUsageError(`--arch must be one of ${SYNTHETIC_ARCHITECTURES.join(", ")}, got "${architecture}"`);
  const chatTemplate = values["chat-template"] as SyntheticChatTemplate | undefined;
  if (chatTemplate !== undefined && !SYNTHETIC_CHAT_TEMPLATES.includes(chatTemplate))
    throw new SynthUsageError(
      `--chat-template must be one of ${SYNTHETIC_CHAT_TEMPLATES.join(", ")}, got "${chatTemplate}"`,
    );

  const { tensorType, quantizeTo } = type;
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
  // Not a shape override: the template changes no tensor, so a --like model keeps its name, with the template added.
  if (chatTemplate !== undefined) options.chatTemplate = chatTemplate;
  if (like !== null) {
    const layers = overridden.length === 1 && overridden[0] === "layers" ? `-l${options.blockCount}` : null;
    const template = chatTemplate === undefined || chatTemplate === "chatml" ? "" : `-${chatTemplate}`;
    // Anything beyond a layer count is not that model any more, so the name spells the shape out instead.
    if (overridden.length === 0 || layers !== null)
      options.label = `${like.name}${layers ?? ""}${template}-${(quantizeTo ?? tensorType).toLowerCase()}`;
  }

  const out = typeof values.out === "string" ? values.out : null;
  const isDryRun = values["dry-run"] === true;
  if (out === null && !isDryRun)
    throw new SynthUsageError("--out <file.gguf> is required (or --dry-run to only print the plan)");
  return { options, quantizeTo, like, out, isDryRun };
}

function parseDeriveRequest(values: Record<string, string | boolean | undefined>): DeriveRequest {
  const conflicting = SYNTH_ONLY_FLAGS.filter((flag) => values[flag] !== undefined);
  if (conflicting.length > 0)
    throw new SynthUsageError(
      `--derive-from copies the source's shape and weights; it cannot be combined with ${conflicting
        .map((flag) => `--${flag}`)
        .join(", ")}${conflicting.includes("layers") ? " (use --keep-layers)" : ""}`,
    );
  const source = values["derive-from"];
  if (typeof source !== "string") throw new SynthUsageError("--keep-layers needs --derive-from <model.gguf>");
  const keepLayers = values["keep-layers"];
  if (typeof keepLayers !== "string")
    throw new SynthUsageError("--derive-from needs --keep-layers N, the number of transformer blocks to keep");
  if (typeof values.out !== "string") throw new SynthUsageError("--out <draft.gguf> is required");
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
    throw new SynthUsageError(
      `--widen-from copies the source's shape and weights; it cannot be combined with ${conflicting
        .map((flag) => `--${flag}`)
        .join(", ")}`,
    );
  const source = values["widen-from"];
  if (typeof source !== "string") throw new SynthUsageError("--perturbation needs --widen-from <model.gguf>");
  if (typeof values.ffn !== "string")
    throw new SynthUsageError("--widen-from needs --ffn N, the target's feed-forward hidden size");
  if (typeof values.out !== "string") throw new SynthUsageError("--out <target.gguf> is required");
  const perturbationText = typeof values.perturbation === "string" ? values.perturbation : String(DEFAULT_PERTURBATION);
  const perturbation = Number(perturbationText);
  if (perturbationText.trim() === "" || !Number.isFinite(perturbation) || perturbation < 0)
    throw new SynthUsageError(`--perturbation must be a number of at least 0, got "${perturbationText}"`);
  return {
    source,
    feedForwardLength: parseInteger("ffn", values.ffn, 1),
    perturbation,
    seed: typeof values.seed === "string" ? parseInteger("seed", values.seed, 0) : 0,
    out: values.out,
  };
}

const SYNTH_FLAGS = {
  like: { type: "string" },
  type: { type: "string" },
  out: { type: "string" },
  seed: { type: "string" },
  arch: { type: "string" },
  tied: { type: "boolean" },
  "chat-template": { type: "string" },
  list: { type: "boolean" },
  "derive-from": { type: "string" },
  "keep-layers": { type: "string" },
  "widen-from": { type: "string" },
  perturbation: { type: "string" },
  "dry-run": { type: "boolean" },
  help: { type: "boolean", short: "h" },
  ...Object.fromEntries(Object.keys(DIMENSION_FLAGS).map((flag) => [flag, { type: "string" as const }])),
} as const;

/** What the arguments ask for. */
export type SynthArgs =
  | { readonly kind: "help" }
  | { readonly kind: "list" }
  | { readonly kind: "widen"; readonly request: WidenRequest }
  | { readonly kind: "derive"; readonly request: DeriveRequest }
  | { readonly kind: "synth"; readonly request: SynthRequest };

/**
 * Parses the arguments after "synth". Throws {@link SynthUsageError} for arguments that do not fit together, and
 * parseArgs' TypeError for unknown flags or missing values.
 */
export function parseSynthArgs(argv: string[]): SynthArgs {
  const { values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: SYNTH_FLAGS });
  if (values.help === true) return { kind: "help" };
  if (values.list === true) return { kind: "list" };
  if (values["widen-from"] !== undefined || values.perturbation !== undefined)
    return { kind: "widen", request: parseWidenRequest(values) };
  if (values["derive-from"] !== undefined || values["keep-layers"] !== undefined)
    return { kind: "derive", request: parseDeriveRequest(values) };
  return { kind: "synth", request: parseRequest(values) };
}
