/**
 * What the benches that compare running servers share: `--target label=url` parsing, a pool of concurrent workers
 * timed as a rate, the table of per-level medians over interleaved rounds with each target's ratio to the first,
 * and a free port for a server a bench spawns.
 */

import { once } from "node:events";
import { createServer } from "node:net";

export interface ServerTarget {
  readonly label: string;
  /** Base URL without a trailing slash. */
  readonly url: string;
}

/** `--target label=url` values; at least one. */
export function parseTargets(specs: readonly string[]): ServerTarget[] {
  const targets = specs.map((spec) => {
    const at = spec.indexOf("=");
    if (at < 1) throw new Error(`--target label=url, got ${spec}`);
    return { label: spec.slice(0, at), url: spec.slice(at + 1).replace(/\/$/, "") };
  });
  if (targets.length === 0) throw new Error("give at least one --target label=url");
  return targets;
}

/** Items per second for `count` items, `task(i)` each, run by `workers` concurrent workers. */
export async function ratePerSecond(
  count: number,
  workers: number,
  task: (index: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const startMs = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < count) await task(next++);
    }),
  );
  return count / ((performance.now() - startMs) / 1000);
}

/** The middle sample; the mean of the two middle ones for an even count. */
export function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

export interface RateTableOptions {
  readonly targets: readonly ServerTarget[];
  /** The first column's name, e.g. "concurrency", and its values. */
  readonly levelName: string;
  readonly levels: readonly number[];
  readonly rounds: number;
  /** The rate's unit in the column heads, e.g. "inputs/s". */
  readonly unit: string;
  /** One timed run of `target` (the `index`-th) at `level`, as a rate. */
  readonly run: (target: ServerTarget, index: number, level: number) => Promise<number>;
}

/** Prints a Markdown table: per level, each target's median rate over rounds that take the targets in turn. */
export async function printRateTable(options: RateTableOptions): Promise<void> {
  const { targets } = options;
  const first = targets[0]?.label ?? "";
  const others = targets.slice(1);
  console.log(
    `| ${options.levelName} | ${targets.map((target) => `${target.label} ${options.unit}`).join(" | ")} | ${others
      .map((target) => `${target.label} / ${first}`)
      .join(" | ")} |`,
  );
  console.log(`| ---: | ${targets.map(() => "---:").join(" | ")} | ${others.map(() => "---:").join(" | ")} |`);
  for (const level of options.levels) {
    const samples = targets.map((): number[] => []);
    for (let round = 0; round < options.rounds; round++) {
      for (const [index, target] of targets.entries()) samples[index]?.push(await options.run(target, index, level));
    }
    const medians = samples.map(median);
    const reference = medians[0] ?? 1;
    console.log(
      `| ${level} | ${medians.map((value) => value.toFixed(1)).join(" | ")} | ${medians
        .slice(1)
        .map((value) => `${(value / reference).toFixed(2)}×`)
        .join(" | ")} |`,
    );
  }
}

/** A loopback port free at the time of asking, for a server a bench spawns. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}
