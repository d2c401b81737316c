/**
 * Coverage and soundness of the JSON Schema converter on JSONSchemaBench (../shared/schemas/jsonschemabench): for
 * every schema, convert it (timed), sample strings from the grammar and validate them with ajv. Prints per split:
 * schemas, converted, rejected (top keywords), invalid samples (must be 0), crashes (must be 0), schemas ajv cannot
 * compile, and compile time percentiles.
 *
 *   npx tsx bench/schema-coverage.ts [--split Glaiveai2K] [--samples 5] [--seed 1] [--verbose] [--native]
 *
 * --native also hands every grammar to llama.cpp's own parser (through node-llama-cpp, no model needed) and
 * checks natively that it accepts every sample: the grammar engine that enforces it agrees with pagoda's.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { checkSchema } from "../test/helpers/schema-soundness.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const corpusDir = path.resolve(repoRoot, "../shared/schemas/jsonschemabench");
const DEFAULT_SPLITS = ["Glaiveai2K", "Github_trivial", "Github_easy", "Github_medium"];

const { values } = parseArgs({
  options: {
    split: { type: "string", multiple: true },
    samples: { type: "string", default: "5" },
    seed: { type: "string", default: "1" },
    verbose: { type: "boolean", default: false },
    native: { type: "boolean", default: false },
  },
});

/** llama.cpp's verdict on a grammar and a text: parse failure, or whether the whole text matches. */
type NativeCheck = (gbnf: string, samples: readonly string[]) => "rejected" | number;
const nativeCheck: NativeCheck | null = values.native ? await loadNativeCheck() : null;

async function loadNativeCheck(): Promise<NativeCheck> {
  const { getLlama, LlamaGrammar } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false });
  return (gbnf, samples) => {
    let grammar: InstanceType<typeof LlamaGrammar>;
    try {
      grammar = new LlamaGrammar(llama, { grammar: gbnf });
    } catch {
      return "rejected";
    }
    // The addon's matcher is not part of node-llama-cpp's typed API.
    const native = (grammar as unknown as { _grammar: { isTextCompatible(text: string): boolean } })._grammar;
    return samples.filter((sample) => !native.isTextCompatible(sample)).length;
  };
}
const splits = values.split ?? DEFAULT_SPLITS;
const numSamples = Number(values.samples);
const seed = Number(values.seed);

interface SplitStats {
  split: string;
  total: number;
  converted: number;
  sound: number;
  rejected: Map<string, number>;
  numRejected: number;
  invalidSamples: number;
  unfinishedSamples: number;
  crashes: number;
  nativeRejected: number;
  nativeMismatches: number;
  unreadable: number;
  ajvUncompilable: number;
  compileMs: number[];
}

function runSplit(split: string): SplitStats {
  const dir = path.join(corpusDir, split);
  const stats: SplitStats = {
    split,
    total: 0,
    converted: 0,
    sound: 0,
    rejected: new Map(),
    numRejected: 0,
    invalidSamples: 0,
    unfinishedSamples: 0,
    crashes: 0,
    nativeRejected: 0,
    nativeMismatches: 0,
    unreadable: 0,
    ajvUncompilable: 0,
    compileMs: [],
  };
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith(".json")) continue;
    stats.total++;
    let schema: unknown;
    try {
      schema = JSON.parse(readFileSync(path.join(dir, file), "utf8"));
    } catch {
      stats.unreadable++;
      continue;
    }
    const check = checkSchema(schema, { samples: numSamples, seed });
    stats.compileMs.push(check.compileMs);
    if (check.outcome === "rejected") {
      stats.numRejected++;
      const key = `${check.error.keyword} (${check.error.code})`;
      stats.rejected.set(key, (stats.rejected.get(key) ?? 0) + 1);
      if (values.verbose) console.log(`rejected ${split}/${file}: ${check.error.message}`);
    } else if (check.outcome === "crashed") {
      stats.crashes++;
      console.log(`CRASH ${split}/${file}:`, check.error);
    } else {
      stats.converted++;
      if (!check.isValidated) stats.ajvUncompilable++;
      stats.unfinishedSamples += check.numUnfinished;
      stats.invalidSamples += check.invalid.length;
      if (check.invalid.length === 0) stats.sound++;
      if (nativeCheck !== null) {
        const verdict = nativeCheck(check.grammar, check.samples);
        if (verdict === "rejected") {
          stats.nativeRejected++;
          console.log(`NATIVE REJECTED ${split}/${file}`);
        } else stats.nativeMismatches += verdict;
      }
      for (const bad of check.invalid.slice(0, 2)) {
        console.log(
          `INVALID ${split}/${file}: ${JSON.stringify(bad.sample).slice(0, 300)}\n  ${bad.reason.slice(0, 300)}`,
        );
      }
    }
  }
  return stats;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function percent(part: number, whole: number): string {
  return whole === 0 ? "-" : `${((100 * part) / whole).toFixed(1)}%`;
}

const results = splits.map(runSplit);
console.log(`\nsamples per schema: ${numSamples}, seed ${seed}\n`);
console.log(
  "| split | schemas | converted, all samples valid | rejected | invalid samples | crashes | ajv-uncompilable | unfinished samples | compile p50 / p99 / max ms |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const s of results) {
  const sorted = [...s.compileMs].sort((a, b) => a - b);
  const times = [50, 99, 100].map((p) => percentile(sorted, p).toFixed(2)).join(" / ");
  console.log(
    `| ${s.split} | ${s.total} | ${s.sound} (${percent(s.sound, s.total)}) | ${s.numRejected} | ${s.invalidSamples} | ${s.crashes + s.unreadable} | ${s.ajvUncompilable} | ${s.unfinishedSamples} | ${times} |`,
  );
}
if (nativeCheck !== null) {
  for (const s of results) {
    console.log(`${s.split}: llama.cpp rejected ${s.nativeRejected} grammars, refused ${s.nativeMismatches} samples`);
  }
}
for (const s of results) {
  const top = [...s.rejected.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
  console.log(`\n${s.split}: rejected by keyword: ${top.map(([k, n]) => `${k} ${n}`).join(", ") || "none"}`);
}
