import { basename } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_EMBEDDING_PARALLEL, FLASH_ATTENTION_MODES, KV_LAYOUTS } from "../config/config-schema.ts";
import { parsePooledModelEntry } from "../config/pooled-model-entry.ts";
import { formatBytes, formatMemoryPlan, memoryPlanToJson } from "./format-plan.ts";
import { type GgufModelInfo, readGgufModelInfo } from "./gguf-model-info.ts";
import { KV_CACHE_TYPES, type MemoryPlan, type PlanOptions, planMemory } from "./memory-plan.ts";
import { planPooledModel } from "./pooled-plan.ts";
import { SERVER_CONTEXT_DEFAULTS, serverPlanOptions } from "./server-plan-options.ts";

/** Where the command writes; the process streams unless a test passes its own. */
export interface PlanCommandIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

const D = SERVER_CONTEXT_DEFAULTS;

const USAGE = `usage: pagoda plan <model.gguf> [options]

Where the RAM goes when pagoda serves this model, from the GGUF header alone (no weights are loaded). Every
default is the server's, so a bare plan describes a server started without flags.

options:
  --ctx-size N          tokens per sequence (default ${D.ctxSize})
  --parallel N          sequences decoded together (default ${D.parallel})
  --kv-layout LAYOUT    ${KV_LAYOUTS.join(" or ")}: one KV pool for all sequences, or ctx-size cells reserved per
                        sequence (default ${D.kvLayout}, as the server with the patched addon)
  --kv-cache-tokens N   cells of the shared pool (default: ctx-size × parallel)
  --kv-type TYPE        KV cache type: ${KV_CACHE_TYPES.join(", ")} (default ${D.kvType}, the server's only type)
  --batch-size N        tokens per engine step (default ${D.batchSize})
  --ubatch-size N       tokens per micro-batch (default: the batch size)
  --flash-attn MODE     ${FLASH_ATTENTION_MODES.join(", ")} (default ${D.flashAttn}: on for the shared pool and for quantized KV
                        caches, off for f16/f32 slabs, as the server on CPU)
  --embedding-model F   plan an embedding model served beside this one too (repeatable; NAME=F as the server)
  --rerank-model F      plan a reranker served beside this one too (repeatable)
  --embedding-parallel N  inputs per decode of each pooling context (default ${DEFAULT_EMBEDDING_PARALLEL})
  --json                print the plan as JSON
  -h, --help            show this help
`;

/** A usage error: reported on stderr with exit code 2. */
class UsageError extends Error {
  override readonly name = "UsageError";
}

function positiveInteger(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < 1)
    throw new UsageError(`--${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  return parsed;
}

/** The value of a flag that takes one of `choices`, or `fallback` when it is absent. */
function choice<Choice extends string>(
  flag: string,
  value: string | undefined,
  choices: readonly Choice[],
  fallback: Choice,
): Choice {
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value))
    throw new UsageError(`--${flag} must be one of ${choices.join(", ")}, got ${JSON.stringify(value)}`);
  return value as Choice;
}

/** A model to plan beside the generator, as the server would serve it. */
interface PooledEntry {
  readonly role: "embedding" | "rerank";
  readonly modelPath: string;
}

type ParsedCommand =
  | { readonly isHelp: true }
  | {
      readonly isHelp: false;
      readonly modelPath: string;
      readonly options: PlanOptions;
      readonly pooled: readonly PooledEntry[];
      readonly embeddingParallel: number;
      readonly isJson: boolean;
    };

const PLAN_FLAGS = {
  "ctx-size": { type: "string" },
  parallel: { type: "string" },
  "kv-layout": { type: "string" },
  "kv-cache-tokens": { type: "string" },
  "kv-type": { type: "string" },
  "batch-size": { type: "string" },
  "ubatch-size": { type: "string" },
  "flash-attn": { type: "string" },
  "embedding-model": { type: "string", multiple: true },
  "rerank-model": { type: "string", multiple: true },
  "embedding-parallel": { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options: PLAN_FLAGS });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function parseCommand(argv: string[]): ParsedCommand {
  const { values, positionals } = parseFlags(argv);
  if (values.help) return { isHelp: true };
  if (positionals.length !== 1)
    throw new UsageError(
      positionals.length === 0 ? "missing the GGUF file to plan" : `expected one GGUF file, got ${positionals.length}`,
    );

  const kvLayout = choice("kv-layout", values["kv-layout"], KV_LAYOUTS, D.kvLayout);
  const kvCacheTokens = positiveInteger("kv-cache-tokens", values["kv-cache-tokens"]);
  if (kvLayout === "slabs" && kvCacheTokens !== undefined)
    throw new UsageError("--kv-cache-tokens sizes the shared pool; --kv-layout slabs has none");
  const ubatchSize = positiveInteger("ubatch-size", values["ubatch-size"]);
  const options = serverPlanOptions({
    ctxSize: positiveInteger("ctx-size", values["ctx-size"]) ?? D.ctxSize,
    parallel: positiveInteger("parallel", values.parallel) ?? D.parallel,
    batchSize: positiveInteger("batch-size", values["batch-size"]) ?? D.batchSize,
    kvLayout,
    ...(kvCacheTokens === undefined ? {} : { kvCacheTokens }),
    kvType: choice("kv-type", values["kv-type"], KV_CACHE_TYPES, D.kvType),
    flashAttn: choice("flash-attn", values["flash-attn"], FLASH_ATTENTION_MODES, D.flashAttn),
    ...(ubatchSize === undefined ? {} : { ubatchSize }),
  });
  const pathOf = (entry: string): string => parsePooledModelEntry(entry).modelPath;
  const pooled: PooledEntry[] = [
    ...(values["embedding-model"] ?? []).map((entry) => ({ role: "embedding" as const, modelPath: pathOf(entry) })),
    ...(values["rerank-model"] ?? []).map((entry) => ({ role: "rerank" as const, modelPath: pathOf(entry) })),
  ];
  return {
    isHelp: false,
    modelPath: positionals[0]!,
    options,
    pooled,
    embeddingParallel:
      positiveInteger("embedding-parallel", values["embedding-parallel"]) ?? DEFAULT_EMBEDDING_PARALLEL,
    isJson: values.json,
  };
}

/**
 * `pagoda plan <gguf> […]`: prints the memory plan and resolves to the exit code
 * (0 done, 1 the file could not be planned, 2 bad arguments).
 */
export async function runPlanCommand(argv: string[], io: PlanCommandIo = process): Promise<number> {
  let command: ParsedCommand;
  try {
    command = parseCommand(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`pagoda plan: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (command.isHelp) {
    io.stdout.write(USAGE);
    return 0;
  }

  const models: GgufModelInfo[] = [];
  for (const modelPath of [command.modelPath, ...command.pooled.map((entry) => entry.modelPath)]) {
    try {
      models.push(await readGgufModelInfo(modelPath));
    } catch (error) {
      io.stderr.write(
        `pagoda plan: cannot read ${modelPath}: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      return 1;
    }
  }
  let plans: MemoryPlan[];
  try {
    plans = models.map((model, index) =>
      index === 0
        ? planMemory(model, command.options)
        : planPooledModel(model, { ctxSize: command.options.ctxSize, numSequences: command.embeddingParallel }),
    );
  } catch (error) {
    // planMemory throws RangeError only for options this model cannot be served with.
    if (!(error instanceof RangeError)) throw error;
    io.stderr.write(`pagoda plan: ${error.message}\n`);
    return 2;
  }
  // The generator's own pooling context for /v1/embeddings, created on the first such request; weights shared.
  const own = planPooledModel(models[0]!, {
    ctxSize: command.options.ctxSize,
    numSequences: command.embeddingParallel,
  });
  const embeddingContextBytes = own.totalMaxBytes - own.weightsBytes;
  io.stdout.write(
    command.isJson ? planJson(command, plans, embeddingContextBytes) : planText(command, plans, embeddingContextBytes),
  );
  return 0;
}

/** The generator's plan as before; with pooled models, theirs beside it and the process's total. */
function planJson(
  command: Extract<ParsedCommand, { isHelp: false }>,
  plans: readonly MemoryPlan[],
  embeddingContextBytes: number,
): string {
  const [main, ...pooled] = plans as [MemoryPlan, ...MemoryPlan[]];
  const json: Record<string, unknown> = memoryPlanToJson(main);
  json.embedding_context_bytes = embeddingContextBytes;
  if (pooled.length > 0) {
    json.pooled_models = pooled.map((plan, index) => ({
      model_path: command.pooled[index]!.modelPath,
      role: command.pooled[index]!.role,
      ...memoryPlanToJson(plan),
    }));
  }
  json.process_total_max_bytes = processTotal(plans, embeddingContextBytes);
  return `${JSON.stringify(json, null, 2)}\n`;
}

/** Everything the process may allocate: each model at its largest, and the generator's embedding context. */
function processTotal(plans: readonly MemoryPlan[], embeddingContextBytes: number): number {
  return plans.reduce((sum, plan) => sum + plan.totalMaxBytes, embeddingContextBytes);
}

function planText(
  command: Extract<ParsedCommand, { isHelp: false }>,
  plans: readonly MemoryPlan[],
  embeddingContextBytes: number,
): string {
  const [main, ...pooled] = plans as [MemoryPlan, ...MemoryPlan[]];
  const parts = [formatMemoryPlan(main, basename(command.modelPath))];
  pooled.forEach((plan, index) => {
    const entry = command.pooled[index]!;
    parts.push(formatMemoryPlan(plan, `${basename(entry.modelPath)}, served beside it (--${entry.role}-model)`));
  });
  const bytes = (value: number) => `${formatBytes(value)} (${value.toLocaleString("en-US")} bytes)`;
  const total = processTotal(plans, embeddingContextBytes);
  parts.push(
    `its own embedding context, created on the first /v1/embeddings request to it: ${bytes(embeddingContextBytes)}\n` +
      `the whole process at most (${plans.length === 1 ? "the model" : `all ${plans.length} models`} and that ` +
      `context): ${bytes(total)}\n`,
  );
  return parts.join("\n");
}
