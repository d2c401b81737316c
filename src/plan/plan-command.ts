import { basename } from "node:path";
import { parseArgs } from "node:util";
import { FLASH_ATTENTION_MODES, KV_LAYOUTS } from "../config/config-schema.ts";
import { formatMemoryPlan, memoryPlanToJson } from "./format-plan.ts";
import { type GgufModelInfo, readGgufModelInfo } from "./gguf-model-info.ts";
import { KV_CACHE_TYPES, type MemoryPlan, type PlanOptions, planMemory } from "./memory-plan.ts";
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

type ParsedCommand =
  | { readonly isHelp: true }
  | { readonly isHelp: false; readonly modelPath: string; readonly options: PlanOptions; readonly isJson: boolean };

const PLAN_FLAGS = {
  "ctx-size": { type: "string" },
  parallel: { type: "string" },
  "kv-layout": { type: "string" },
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
  return { isHelp: false, modelPath: positionals[0]!, options, isJson: values.json };
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
