/**
 * Streaming latency probe of the load harness: autocannon times whole responses only, so a few streams are opened
 * with fetch alongside the load and their server-sent events parsed as they arrive, giving time to first token
 * (TTFT) and the gaps between content chunks (inter-token latency, ITL) as a client under that load sees them.
 */
import { type PercentileSummary, percentileSummary } from "./load-stats.ts";
import type { LoadTarget, RequestShape } from "./load-target.ts";

export interface ProbeResult {
  readonly numStreams: number;
  readonly numFailed: number;
  /** One entry per failure kind, e.g. "HTTP 429" or "ECONNRESET", with its count. */
  readonly failures: Record<string, number>;
  readonly completionTokens: number;
  readonly ttftMs: PercentileSummary | null;
  readonly itlMs: PercentileSummary | null;
}

export interface StreamTiming {
  readonly ttftMs: number | null;
  readonly gapsMs: number[];
  readonly completionTokens: number;
  /** `usage.prompt_tokens_details.cached_tokens`, or llama-server's `timings.cache_n`; null when neither came. */
  readonly cachedTokens: number | null;
  /** `usage.prompt_tokens`, or llama-server's `timings.prompt_n + cache_n`; null when neither came. */
  readonly promptTokens: number | null;
  readonly text: string;
}

/** Text a chunk adds, for both routes: completions put it in `text`, chat in `delta.content`. */
function chunkText(chunk: unknown): string {
  const choice = (chunk as { choices?: { text?: string; delta?: { content?: string | null } }[] }).choices?.[0];
  return choice?.text ?? choice?.delta?.content ?? "";
}

interface Chunk {
  usage?: {
    completion_tokens?: number;
    prompt_tokens?: number;
    prompt_tokens_details?: { cached_tokens?: number };
  } | null;
  timings?: { cache_n?: number; prompt_n?: number };
  error?: { message?: string };
}

/** Streams one request and times its content chunks. */
async function timeOneStream(
  target: LoadTarget,
  shape: RequestShape,
  prompt: string,
  signal: AbortSignal,
): Promise<StreamTiming> {
  return timeStream(`${target.url}${shape.path}`, target.headers, shape.body(prompt, true), signal);
}

/** POSTs a streaming body to `url` and times its content chunks as they arrive. */
export async function timeStream(
  url: string,
  headers: Record<string, string>,
  body: Record<string, unknown>,
  signal: AbortSignal,
): Promise<StreamTiming> {
  const startMs = performance.now();
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal });
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status}`);
  }
  const decoder = new TextDecoder();
  let buffer = "";
  let ttftMs: number | null = null;
  let lastMs = 0;
  let completionTokens = 0;
  let cachedTokens: number | null = null;
  let promptTokens: number | null = null;
  let text = "";
  const gapsMs: number[] = [];
  for await (const bytes of response.body) {
    buffer += decoder.decode(bytes, { stream: true });
    const nowMs = performance.now();
    let end = buffer.indexOf("\n\n");
    while (end !== -1) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
      if (!frame.startsWith("data: ") || frame === "data: [DONE]") continue;
      const chunk = JSON.parse(frame.slice("data: ".length)) as Chunk;
      if (chunk.error !== undefined) throw new Error(`error frame: ${chunk.error.message ?? "unknown"}`);
      if (chunk.usage?.completion_tokens !== undefined) completionTokens = chunk.usage.completion_tokens;
      cachedTokens = chunk.usage?.prompt_tokens_details?.cached_tokens ?? chunk.timings?.cache_n ?? cachedTokens;
      const timings = chunk.timings;
      promptTokens =
        chunk.usage?.prompt_tokens ??
        (timings?.prompt_n === undefined ? null : timings.prompt_n + (timings.cache_n ?? 0)) ??
        promptTokens;
      const added = chunkText(chunk);
      if (added.length === 0) continue;
      text += added;
      if (ttftMs === null) ttftMs = nowMs - startMs;
      else gapsMs.push(nowMs - lastMs);
      lastMs = nowMs;
    }
  }
  return { ttftMs, gapsMs, completionTokens, cachedTokens, promptTokens, text };
}

/** Opens `numStreams` streams one after another each, until `signal` aborts; then summarises them. */
export async function runProbe(
  target: LoadTarget,
  shape: RequestShape,
  prompts: readonly string[],
  numStreams: number,
  signal: AbortSignal,
): Promise<ProbeResult> {
  const timings: StreamTiming[] = [];
  const failures: Record<string, number> = {};
  let numFailed = 0;
  let next = 0;
  const loop = async (): Promise<void> => {
    while (!signal.aborted) {
      const prompt = prompts[next++ % prompts.length] ?? "";
      try {
        timings.push(await timeOneStream(target, shape, prompt, signal));
      } catch (error) {
        // A stream cut by the end of the run is not a failure of the server.
        if (signal.aborted) return;
        numFailed += 1;
        const cause = (error as { cause?: { code?: string } }).cause;
        const kind = cause?.code ?? (error instanceof Error ? error.message : String(error));
        failures[kind] = (failures[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: numStreams }, loop));
  const ttfts = timings.map((timing) => timing.ttftMs).filter((value): value is number => value !== null);
  const gaps = timings.flatMap((timing) => timing.gapsMs);
  return {
    numStreams: timings.length,
    numFailed,
    failures,
    completionTokens: timings.reduce((sum, timing) => sum + timing.completionTokens, 0),
    ttftMs: percentileSummary(ttfts),
    itlMs: percentileSummary(gaps),
  };
}
