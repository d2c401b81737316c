/**
 * Start-up side by side: the time from spawning a server to its first 200 on `GET /health`, for several commands
 * taken in turn (the order rotates each round), median of the rounds, each command's ratio to the first.
 *
 *   npm run bench:startup -- --rounds 9 \
 *     --command "pagoda=node bin/pagoda.js --model ../shared/models/stories260K.gguf --port {port}" \
 *     --command "llama-server=llama-server -m ../shared/models/stories260K.gguf --port {port}"
 *
 * `{port}` is replaced by a free port; the command runs in its own process group, killed once it has answered.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { parseArgs } from "node:util";
import { freePort, median } from "./side-by-side.ts";

interface Command {
  readonly label: string;
  readonly line: string;
}

const HEALTH_TIMEOUT_MS = 60_000;

async function isHealthy(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = once(child, "exit");
  process.kill(-child.pid, "SIGKILL");
  await exited;
}

/** Milliseconds from spawn to the first 200 on /health. */
async function timeStart(command: Command): Promise<number> {
  const port = await freePort();
  const startMs = performance.now();
  const child = spawn(command.line.replaceAll("{port}", String(port)), {
    shell: true,
    detached: true,
    stdio: "ignore",
  });
  try {
    while (!(await isHealthy(port))) {
      if (child.exitCode !== null)
        throw new Error(`${command.label} exited with ${child.exitCode} before it was ready`);
      if (performance.now() - startMs > HEALTH_TIMEOUT_MS) throw new Error(`${command.label} was not ready in 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return performance.now() - startMs;
  } finally {
    await stop(child);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      command: { type: "string", multiple: true, default: [] },
      rounds: { type: "string", default: "7" },
    },
  });
  const commands: Command[] = (values.command ?? []).map((spec) => {
    const at = spec.indexOf("=");
    if (at < 1) throw new Error(`--command label=command line, got ${spec}`);
    return { label: spec.slice(0, at), line: spec.slice(at + 1) };
  });
  if (commands.length === 0) throw new Error("give at least one --command label=command line");
  const rounds = Number(values.rounds);
  const samples = new Map(commands.map((command) => [command.label, [] as number[]]));
  for (let round = 0; round < rounds; round++) {
    for (let offset = 0; offset < commands.length; offset++) {
      const command = commands[(round + offset) % commands.length]!;
      samples.get(command.label)?.push(await timeStart(command));
    }
  }
  const first = median(samples.get(commands[0]!.label) ?? []);
  process.stdout.write(`spawn to the first 200 on /health, ${rounds} rounds in rotated order\n\n`);
  process.stdout.write(
    "| command | min ms | median ms | max ms | median / first |\n| --- | ---: | ---: | ---: | ---: |\n",
  );
  for (const command of commands) {
    const ms = samples.get(command.label) ?? [];
    const row = [Math.min(...ms), median(ms), Math.max(...ms)].map((value) => value.toFixed(0));
    process.stdout.write(`| ${command.label} | ${row.join(" | ")} | ${(median(ms) / first).toFixed(2)}× |\n`);
  }
}

await main();
