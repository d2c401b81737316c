/**
 * Serving workloads against running OpenAI-compatible servers, side by side in one run:
 *
 *   npm run bench:workloads -- --target pagoda=http://127.0.0.1:8080 --target llama-server=http://127.0.0.1:8081
 *                              [--only decode,fill,chat,burst,mixed,overload,json] [--users 1,8,16] [--repeats 3]
 *                              [--max-tokens 128] [--fill-prompts 40] [--overload-users 64] [--out results.json]
 *
 * - decode: N users stream 128-token completions of short distinct prompts (ignore_eos, greedy).
 * - fill: decode at the most users on each target (median of 3 after a warm-up run), then 40 distinct
 *   ~1,000-token prompts fill its prefix cache, then the same decodes again; the ratio after/before shows what
 *   cached prefixes cost every later step. Run it on freshly started servers.
 * - chat: 16 users share a ~1,000-token system prompt and talk 4 turns each (their history grows).
 * - burst: 16 users send at the same moment prompts that share one ~1,700-token context (a RAG document, a long
 *   system prompt) and differ in a short question; 16 tokens each. Run it on its own: it needs `--ctx-size` 2048.
 * - mixed: 12 users decode while 4 users send ~1,500-token prompts; the decoders' inter-token latency and the long
 *   prompts' time to first token.
 * - overload: many users at once (default 64), two requests each, against a pool that holds far fewer.
 * - json: as many users as the most in --users stream completions constrained by one JSON schema (`json_schema`,
 *   which pagoda and llama-server both read), greedy, until the grammar ends them; validPercent counts outputs that
 *   parse and validate against the schema.
 *
 * Targets run one after another (never at once: they share the machine), in an order rotated every repeat; each
 * figure is the median over the repeats. Times are as a streaming client sees them.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Ajv } from "ajv";
import { EXTRACTION_SCHEMA } from "./extraction-schema.ts";
import { type StreamTiming, timeStream } from "./load-probe.ts";
import { percentileSummary } from "./load-stats.ts";
import { parseTargets } from "./side-by-side.ts";

const { values } = parseArgs({
  options: {
    target: { type: "string", multiple: true, default: [] },
    only: { type: "string", default: "decode,fill,chat,mixed,overload" },
    users: { type: "string", default: "1,8,16" },
    repeats: { type: "string", default: "3" },
    "max-tokens": { type: "string", default: "128" },
    "fill-prompts": { type: "string", default: "40" },
    "overload-users": { type: "string", default: "64" },
    out: { type: "string" },
  },
  strict: true,
});

interface Target {
  readonly label: string;
  readonly url: string;
  model: string;
}

const targets: Target[] = parseTargets(values.target).map((target) => ({ ...target, model: "" }));
const repeats = Number(values.repeats);
const maxTokens = Number(values["max-tokens"]);
const HEADERS = { "content-type": "application/json" };

type Metrics = Record<string, number>;
const results: Record<string, Record<string, Metrics[]>> = {};

function record(workload: string, target: Target, metrics: Metrics): void {
  const byTarget = results[workload] ?? {};
  results[workload] = byTarget;
  byTarget[target.label] = [...(byTarget[target.label] ?? []), metrics];
  console.error(
    `  ${workload} ${target.label}: ${Object.entries(metrics)
      .map(([key, value]) => `${key}=${value}`)
      .join(" ")}`,
  );
}

const WORDS =
  "the a little big dog cat girl boy sun tree park ball red blue happy sad ran saw said played went home mom dad friend day night bird fish water sky".split(
    " ",
  );

/** Deterministic text of about `numTokens` tokens (calibrated on the first target's tokenizer), unique per `seed`. */
let charsPerToken = 3;
function text(seed: number, numTokens: number): string {
  let state = (seed * 2654435761) >>> 0 || 1;
  const words: string[] = [];
  let length = 0;
  while (length < numTokens * charsPerToken) {
    state = (state * 1103515245 + 12345) >>> 0;
    const word = WORDS[state % WORDS.length]!;
    words.push(word);
    length += word.length + 1;
  }
  return words.join(" ");
}

async function calibrate(target: Target): Promise<void> {
  const models = (await (await fetch(`${target.url}/v1/models`)).json()) as { data: { id: string }[] };
  for (const each of targets) each.model = models.data[0]?.id ?? "model";
  const sample = text(1, 1000);
  const response = await fetch(`${target.url}/tokenize`, {
    method: "POST",
    headers: HEADERS,
    body: JSON.stringify({ content: sample }),
  });
  const { tokens } = (await response.json()) as { tokens: unknown[] };
  charsPerToken = sample.length / tokens.length;
}

interface Outcome {
  readonly timing: StreamTiming | null;
  readonly error: string | null;
  readonly endMs: number;
}

async function stream(
  target: Target,
  route: "completions" | "chat",
  input: string | { role: string; content: string }[],
  numTokens: number,
  extra: Record<string, unknown> = { ignore_eos: true },
): Promise<Outcome> {
  const body = {
    model: target.model,
    max_tokens: numTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
    ...extra,
    ...(route === "chat" ? { messages: input } : { prompt: input }),
  };
  try {
    const timing = await timeStream(
      `${target.url}/v1/${route === "chat" ? "chat/completions" : "completions"}`,
      HEADERS,
      body,
      AbortSignal.timeout(600_000),
    );
    return { timing, error: null, endMs: performance.now() };
  } catch (error) {
    return { timing: null, error: error instanceof Error ? error.message : String(error), endMs: performance.now() };
  }
}

/** tok/s over the wall time, TTFT and ITL percentiles, errors. */
function summarize(outcomes: readonly Outcome[], startMs: number, prefix = ""): Metrics {
  const ok = outcomes.flatMap((outcome) => (outcome.timing === null ? [] : [outcome.timing]));
  const endMs = Math.max(...outcomes.map((outcome) => outcome.endMs));
  const ttft = percentileSummary(ok.flatMap((timing) => (timing.ttftMs === null ? [] : [timing.ttftMs])));
  const itl = percentileSummary(ok.flatMap((timing) => timing.gapsMs));
  const tokens = ok.reduce((sum, timing) => sum + timing.completionTokens, 0);
  return {
    [`${prefix}tokPerS`]: Math.round((tokens / (endMs - startMs)) * 1000 * 10) / 10,
    [`${prefix}ttftP50Ms`]: ttft?.p50 ?? -1,
    [`${prefix}ttftP99Ms`]: ttft?.p99 ?? -1,
    [`${prefix}itlP50Ms`]: itl?.p50 ?? -1,
    [`${prefix}itlP99Ms`]: itl?.p99 ?? -1,
    [`${prefix}errors`]: outcomes.length - ok.length,
  };
}

async function decode(target: Target, numUsers: number, seed: number): Promise<Metrics> {
  const startMs = performance.now();
  const outcomes = await Promise.all(
    Array.from({ length: numUsers }, (_, user) =>
      stream(target, "completions", text(seed * 1000 + user, 32), maxTokens),
    ),
  );
  return summarize(outcomes, startMs);
}

/** Median decode tok/s of three runs, after one run that warms the server up. */
async function decodeTokPerS(
  target: Target,
  numUsers: number,
  seed: number,
): Promise<{ tokPerS: number; errors: number }> {
  await decode(target, numUsers, seed);
  const runs = [
    await decode(target, numUsers, seed + 1),
    await decode(target, numUsers, seed + 2),
    await decode(target, numUsers, seed + 3),
  ];
  return { tokPerS: median(runs.map((run) => run.tokPerS!)), errors: runs.reduce((sum, run) => sum + run.errors!, 0) };
}

async function fill(target: Target, numUsers: number): Promise<Metrics> {
  const fresh = await decodeTokPerS(target, numUsers, 70);
  const numPrompts = Number(values["fill-prompts"]);
  for (let first = 0; first < numPrompts; first += 4) {
    await Promise.all(
      [0, 1, 2, 3]
        .filter((index) => first + index < numPrompts)
        .map((index) => stream(target, "completions", text(50_000 + first + index, 1000), 1)),
    );
  }
  const after = await decodeTokPerS(target, numUsers, 80);
  return {
    freshTokPerS: fresh.tokPerS,
    afterTokPerS: after.tokPerS,
    ratio: Math.round((after.tokPerS / fresh.tokPerS) * 100) / 100,
    errors: fresh.errors + after.errors,
  };
}

async function chat(target: Target, seed: number): Promise<Metrics> {
  const system = { role: "system", content: text(seed, 1000) };
  const startMs = performance.now();
  let cached = 0;
  let prompt = 0;
  const outcomes = (
    await Promise.all(
      Array.from({ length: 16 }, async (_, user) => {
        const history = [system];
        const mine: Outcome[] = [];
        for (let turn = 0; turn < 4; turn++) {
          history.push({ role: "user", content: text(seed * 100 + user * 10 + turn, 24) });
          const outcome = await stream(target, "chat", history, 32);
          mine.push(outcome);
          history.push({ role: "assistant", content: outcome.timing?.text ?? "" });
          cached += outcome.timing?.cachedTokens ?? 0;
          prompt += outcome.timing?.promptTokens ?? 0;
        }
        return mine;
      }),
    )
  ).flat();
  return { ...summarize(outcomes, startMs), cachedPercent: prompt > 0 ? Math.round((cached / prompt) * 100) : -1 };
}

async function burst(target: Target, seed: number): Promise<Metrics> {
  const context = text(seed, 1700);
  const startMs = performance.now();
  const outcomes = await Promise.all(
    Array.from({ length: 16 }, (_, user) =>
      stream(target, "completions", `${context}\n${text(seed * 100 + user, 12)}`, 16),
    ),
  );
  return { ...summarize(outcomes, startMs), wallMs: Math.round(Math.max(...outcomes.map((o) => o.endMs)) - startMs) };
}

async function mixed(target: Target, seed: number): Promise<Metrics> {
  const startMs = performance.now();
  const decoders = Array.from({ length: 12 }, (_, user) =>
    stream(target, "completions", text(seed * 1000 + user, 32), 256),
  );
  const long = Array.from({ length: 4 }, async (_, user) => {
    const mine: Outcome[] = [];
    for (let index = 0; index < 2; index++)
      mine.push(await stream(target, "completions", text(seed * 7000 + user * 10 + index, 1500), 16));
    return mine;
  });
  const [decoded, prompts] = await Promise.all([Promise.all(decoders), Promise.all(long)]);
  return { ...summarize(decoded, startMs, "decoders."), ...summarize(prompts.flat(), startMs, "long.") };
}

async function overload(target: Target, seed: number): Promise<Metrics> {
  const numUsers = Number(values["overload-users"]);
  const startMs = performance.now();
  const outcomes = (
    await Promise.all(
      Array.from({ length: numUsers }, async (_, user) => {
        const mine: Outcome[] = [];
        for (let index = 0; index < 2; index++)
          mine.push(await stream(target, "completions", text(seed * 1000 + user * 2 + index, 200), maxTokens));
        return mine;
      }),
    )
  ).flat();
  const errors = outcomes.flatMap((outcome) => (outcome.error === null ? [] : [outcome.error]));
  if (errors.length > 0)
    console.error(`  ${target.label} overload errors: ${[...new Set(errors)].slice(0, 3).join("; ")}`);
  return { completed: outcomes.length - errors.length, ...summarize(outcomes, startMs) };
}

const isJsonWorkloadValid = new Ajv({ strict: false }).compile(EXTRACTION_SCHEMA);

async function json(target: Target, numUsers: number, seed: number): Promise<Metrics> {
  const startMs = performance.now();
  const outcomes = await Promise.all(
    Array.from({ length: numUsers }, (_, user) =>
      stream(target, "completions", `${text(seed * 1000 + user, 32)}\nAs JSON:`, 256, {
        json_schema: EXTRACTION_SCHEMA,
      }),
    ),
  );
  const valid = outcomes.filter((outcome) => {
    try {
      return outcome.timing !== null && isJsonWorkloadValid(JSON.parse(outcome.timing.text));
    } catch {
      return false;
    }
  });
  return { ...summarize(outcomes, startMs), validPercent: Math.round((valid.length / outcomes.length) * 100) };
}

function rotated(repeat: number): Target[] {
  return targets.map((_, index) => targets[(index + repeat) % targets.length]!);
}

const only = new Set(values.only.split(","));
const userCounts = values.users.split(",").map(Number);
await calibrate(targets[0]!);
for (let repeat = 0; repeat < repeats; repeat++) {
  for (const target of rotated(repeat)) {
    if (only.has("decode"))
      for (const numUsers of userCounts)
        record(`decode, ${numUsers} users`, target, await decode(target, numUsers, repeat + 1));
    if (only.has("chat"))
      record("chat, 16 users, shared system prompt, 4 turns", target, await chat(target, repeat + 11));
    if (only.has("burst"))
      record("burst, 16 users, one shared ~1,700-token context", target, await burst(target, repeat + 51));
    if (only.has("mixed")) record("12 decoders + 4 long prompts", target, await mixed(target, repeat + 21));
    if (only.has("overload"))
      record(`overload, ${values["overload-users"]} users`, target, await overload(target, repeat + 31));
    if (only.has("json"))
      record(
        `json_schema, ${Math.max(...userCounts)} users`,
        target,
        await json(target, Math.max(...userCounts), repeat + 41),
      );
  }
}
// Filling the cache changes a server for good, so it runs once per target, after everything else.
if (only.has("fill"))
  for (const target of targets)
    record(
      `decode ${Math.max(...userCounts)} users before/after filling the prefix cache`,
      target,
      await fill(target, Math.max(...userCounts)),
    );

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

const summary: Record<string, Record<string, Metrics>> = {};
for (const [workload, byTarget] of Object.entries(results)) {
  console.log(`\n## ${workload} (median of ${Object.values(byTarget)[0]?.length ?? 0})`);
  const keys = Object.keys(Object.values(byTarget)[0]?.[0] ?? {});
  console.log(
    `| metric | ${targets.map((target) => target.label).join(" | ")} | ${targets
      .slice(1)
      .map((target) => `${targets[0]!.label} / ${target.label}`)
      .join(" | ")} |`,
  );
  console.log(`| --- |${" ---: |".repeat(targets.length * 2 - 1)}`);
  summary[workload] = {};
  for (const target of targets)
    summary[workload][target.label] = Object.fromEntries(
      keys.map((key) => [key, median((byTarget[target.label] ?? []).map((metrics) => metrics[key]!))]),
    );
  for (const key of keys) {
    const row = targets.map((target) => summary[workload]![target.label]![key]!);
    const ratios = row.slice(1).map((value) => (value > 0 ? `${(row[0]! / value).toFixed(2)}×` : "—"));
    console.log(`| ${key} | ${row.join(" | ")} | ${ratios.join(" | ")} |`);
  }
}
if (values.out !== undefined) writeFileSync(values.out, JSON.stringify({ targets, results, summary }, null, 2));
