/** The default inference thread count, from the machine's physical cores. */
import { readFileSync } from "node:fs";
import os from "node:os";

/**
 * Counts physical CPU cores available to this process.
 *
 * Node only reports logical CPUs, and SMT siblings share one core's execution
 * units, so counting them would oversubscribe the inference threadpool. On
 * Linux the distinct (physical id, core id) pairs give the real core count;
 * elsewhere (or when that information is missing, as on many ARM boards and
 * some VMs) the logical count is the best available answer. The result is
 * capped by `os.availableParallelism()` because CPU affinity masks (taskset,
 * container cpusets) can restrict the process to fewer CPUs than exist.
 */
export function physicalCoreCount(): number {
  const available = Math.max(1, os.availableParallelism());
  const fromCpuInfo = process.platform === "linux" ? countLinuxCores() : undefined;
  return Math.max(1, Math.min(available, fromCpuInfo ?? available));
}

function countLinuxCores(): number | undefined {
  let text: string;
  try {
    text = readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    // A probe: without a readable /proc/cpuinfo (some sandboxes and containers hide it) the logical count is the
    // answer, which is what undefined asks for. Nothing the user configured is wrong, so nothing is reported.
    return undefined;
  }
  const cores = new Set<string>();
  for (const block of text.split(/\n\s*\n/)) {
    const physical = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1];
    const core = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
    if (physical !== undefined && core !== undefined) cores.add(`${physical}:${core}`);
  }
  return cores.size > 0 ? cores.size : undefined;
}

let cachedDefaultThreads: number | undefined;

/**
 * Default inference thread count: physical cores minus one, at least 1.
 *
 * llama.cpp's threadpool synchronises workers with spin barriers after every
 * graph op. When the pool uses every core, any preemption of one worker (by
 * the Node event loop, HTTP handling or the OS) stalls all the others spinning
 * at the barrier; on 2-core machines this made decode ~30x slower than leaving
 * one core free.
 */
export function defaultThreads(): number {
  cachedDefaultThreads ??= Math.max(1, physicalCoreCount() - 1);
  return cachedDefaultThreads;
}
