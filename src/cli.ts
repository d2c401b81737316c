/**
 * `pagoda [serve] [flags]` starts the server; `pagoda plan …` and `pagoda synth …` are tools that need no server.
 */
import { runServer } from "./main.ts";

/** Each tool resolves to the process exit code. Loaded lazily so `serve` does not pay for the tools. */
const SUBCOMMANDS: Record<string, () => Promise<(argv: string[]) => Promise<number>>> = {
  plan: async () => (await import("./plan/plan-command.ts")).runPlanCommand,
  synth: async () => (await import("./gguf/synth-command.ts")).runSynthCommand,
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
