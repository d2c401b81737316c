/**
 * `pagoda [serve] [flags]` starts the server; `pagoda plan …` and `pagoda synth …` are tools that need no server.
 */
import type { ModelQuantizer } from "./gguf/write-quantized-model.ts";
import { runServer } from "./main.ts";

/**
 * llama.cpp's quantiser for `pagoda synth --type q4_k_m|q6_k`, loaded only when used. llama.cpp gives the reason of a
 * failure only to its log, so its error lines go to stderr: no engine owns the log in this process.
 */
const quantizeWithLlamaCpp: ModelQuantizer = async (inputPath, outputPath, fileType) => {
  const { setNativeLogSink } = await import("./engine/llama-loader.ts");
  const { quantizeModel } = await import("./engine/quantize-model.ts");
  setNativeLogSink((level, message) => {
    if (level === "error") process.stderr.write(`llama.cpp: ${message.trimEnd()}\n`);
  });
  await quantizeModel(inputPath, outputPath, { fileType });
};

/** Each tool resolves to the process exit code. Loaded lazily so `serve` does not pay for the tools. */
const SUBCOMMANDS: Record<string, () => Promise<(argv: string[]) => Promise<number>>> = {
  plan: async () => (await import("./plan/plan-command.ts")).runPlanCommand,
  synth: async () => {
    const { runSynthCommand } = await import("./gguf/synth-command.ts");
    return (argv) => runSynthCommand(argv, undefined, quantizeWithLlamaCpp);
  },
};

async function cli(argv: string[]): Promise<void> {
  const [first, ...rest] = argv;
  const load = first === undefined ? undefined : SUBCOMMANDS[first];
  if (load !== undefined) {
    process.exitCode = await (await load())(rest);
    return;
  }
  await runServer(first === "serve" ? rest : argv);
}

await cli(process.argv.slice(2));
