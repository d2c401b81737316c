/**
 * A real server process on stories260K, as `npm start` runs it (bin/pagoda.js) or from another entry script (a bundle
 * under test), with its JSON log lines collected and its URL read from the ready line.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { STORIES_MODEL } from "./model-server.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface LogLine {
  readonly msg?: string;
  readonly url?: string;
  readonly signal?: string;
  readonly [key: string]: unknown;
}

export interface ServerProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly url: string;
  readonly logs: LogLine[];
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

/** Starts the server with `flags` from `entry` (relative to the repository) and resolves once it is ready. */
export async function startProcess(
  t: { after: (fn: () => void) => void },
  flags: string[] = [],
  entry = "bin/pagoda.js",
): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [entry, "--model", STORIES_MODEL, "--port", "0", "--threads", "1", "--gpu", "false", ...flags],
    { cwd: repoRoot, env: { ...process.env, PAGODA_LOG_LEVEL: "info" } },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const exited = once(child, "exit").then(([code]) => code as number | null);
  const logs: LogLine[] = [];
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const ready = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on("line", (line) => {
      let entry: LogLine;
      try {
        entry = JSON.parse(line) as LogLine;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === "pagoda is ready" && typeof entry.url === "string") resolve(entry.url);
    });
    void exited.then((code) => reject(new Error(`the server exited with ${code} before it was ready: ${stderr}`)));
  });
  return { child, url: await ready, logs, exited };
}
