import { basename } from "node:path";
import { parseArgs } from "node:util";
import { formatMemoryPlan, memoryPlanToJson } from "./format-plan.ts";
import { type GgufModelInfo, readGgufModelInfo } from "./gguf-model-info.ts";
import { KV_CACHE_TYPES, type KvCacheType, type MemoryPlan, type PlanOptions, planMemory } from "./memory-plan.ts";

/** Where the command writes; the process streams unless a test passes its own. */
export interface PlanCommandIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/** The server's own defaults, so a bare `pagoda plan model.gguf` describes a default server. */
const DEFAULT_CTX_SIZE = 2048;
const DEFAULT_PARALLEL = 8;
const DEFAULT_BATCH_SIZE = 512;
const DEFAULT_KV_TYPE: KvCacheType = "f16";

const USAGE = `usage: pagoda plan <model.gguf> [options]

Where the RAM goes when pagoda serves this model, from the GGUF header alone (no weights are loaded).

options:
  --ctx-size N          tokens per sequence (default ${DEFAULT_CTX_SIZE})
  --parallel N          sequences decoded together (default ${DEFAULT_PARALLEL})
  --kv-cache-tokens N   one KV pool of N cells shared by all sequences (default: one per sequence)
  --kv-type TYPE        KV cache type: ${KV_CACHE_TYPES.join(", ")} (default ${DEFAULT_KV_TYPE})
  --batch-size N        tokens per engine step (default ${DEFAULT_BATCH_SIZE})
  --ubatch-size N       tokens per micro-batch (default: the batch size)
  --flash-attn MODE     on, off or auto (default auto: on only for quantized KV caches, as on CPU)
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

interface ParsedCommand {
  readonly modelPath: string;
  readonly options: PlanOptions;
  readonly isJson: boolean;
  readonly isHelp: boolean;
}

const PLAN_FLAGS = {
  "ctx-size": { type: "string" },
  parallel: { type: "string" },
  "kv-cache-tokens": { type: "string" },
  "kv-type": { type: "string" },
  "batch-size": { type: "string" },
  "ubatch-size": { type: "string" },
  "flash-attn": { type: "string" },
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
  const parsed = parseFlags(argv);
  const { values, positionals } = parsed;
  if (values.help)
    return {
      modelPath: "",
      options: { ctxSize: 1, parallel: 1, batchSize: 1, kvType: DEFAULT_KV_TYPE },
      isJson: false,
      isHelp: true,
    };
  if (positionals.length !== 1)
    throw new UsageError(
      positionals.length === 0 ? "missing the GGUF file to plan" : `expected one GGUF file, got ${positionals.length}`,
    );

  const kvType = values["kv-type"] ?? DEFAULT_KV_TYPE;
  if (!(KV_CACHE_TYPES as readonly string[]).includes(kvType))
    throw new UsageError(`--kv-type must be one of ${KV_CACHE_TYPES.join(", ")}, got ${JSON.stringify(kvType)}`);
  const flashAttn = values["flash-attn"] ?? "auto";
  if (flashAttn !== "on" && flashAttn !== "off" && flashAttn !== "auto")
    throw new UsageError(`--flash-attn must be on, off or auto, got ${JSON.stringify(flashAttn)}`);

  const options: PlanOptions = {
    ctxSize: positiveInteger("ctx-size", values["ctx-size"]) ?? DEFAULT_CTX_SIZE,
    parallel: positiveInteger("parallel", values.parallel) ?? DEFAULT_PARALLEL,
    kvCacheTokens: positiveInteger("kv-cache-tokens", values["kv-cache-tokens"]) ?? null,
    kvType: kvType as KvCacheType,
    batchSize: positiveInteger("batch-size", values["batch-size"]) ?? DEFAULT_BATCH_SIZE,
    ...(values["ubatch-size"] === undefined
      ? {}
      : { ubatchSize: positiveInteger("ubatch-size", values["ubatch-size"]) }),
    ...(flashAttn === "auto" ? {} : { flashAttention: flashAttn === "on" }),
  };
  return { modelPath: positionals[0]!, options, isJson: values.json, isHelp: false };
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

  let model: GgufModelInfo;
  try {
    model = await readGgufModelInfo(command.modelPath);
  } catch (error) {
    io.stderr.write(
      `pagoda plan: cannot read ${command.modelPath}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 1;
  }
  let plan: MemoryPlan;
  try {
    plan = planMemory(model, command.options);
  } catch (error) {
    // planMemory throws RangeError only for options this model cannot be served with.
    if (!(error instanceof RangeError)) throw error;
    io.stderr.write(`pagoda plan: ${error.message}\n`);
    return 2;
  }
  io.stdout.write(
    command.isJson
      ? `${JSON.stringify(memoryPlanToJson(plan), null, 2)}\n`
      : formatMemoryPlan(plan, basename(command.modelPath)),
  );
  return 0;
}
