/**
 * Streaming latency probe of the load harness: autocannon times whole responses only, so a few streams are opened
 * with fetch alongside the load and their server-sent events parsed as they arrive, giving time to first token
 * (TTFT) and the gaps between content chunks (inter-token latency, ITL) as a client under that load sees them.
 */
import { percentileSummary, type PercentileSummary } from "./load-stats.ts";
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

interface StreamTiming {
  readonly ttftMs: number | null;
  readonly gapsMs: number[];
  readonly completionTokens: number;
}

/** Text a chunk adds, for both routes: completions put it in `text`, chat in `delta.content`. */
function chunkText(chunk: unknown): string {
  const choice = (chunk as { choices?: { text?: string; delta?: { content?: string | null } }[] }).choices?.[0];
  return choice?.text ?? choice?.delta?.content ?? "";
}

/** Streams one request and times its content chunks. */
async function timeOneStream(target: LoadTarget, shape: RequestShape, prompt: string, signal: AbortSignal): Promise<StreamTiming> {
  const startMs = performance.now();
  const response = await fetch(`${target.url}${shape.path}`, {
    method: "POST",
    headers: target.headers,
    body: JSON.stringify(shape.body(prompt, true)),
    signal,
  });
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status}`);
  }
  const decoder = new TextDecoder();
  let buffer = "";
  let ttftMs: number | null = null;
  let lastMs = 0;
  let completionTokens = 0;
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
      const chunk = JSON.parse(frame.slice("data: ".length)) as { usage?: { completion_tokens?: number } | null; error?: { message?: string } };
      if (chunk.error !== undefined) throw new Error(`error frame: ${chunk.error.message ?? "unknown"}`);
      if (chunk.usage?.completion_tokens !== undefined) completionTokens = chunk.usage.completion_tokens;
      if (chunkText(chunk).length === 0) continue;
      if (ttftMs === null) ttftMs = nowMs - startMs;
      else gapsMs.push(nowMs - lastMs);
      lastMs = nowMs;
    }
  }
  return { ttftMs, gapsMs, completionTokens };
}

/** Opens `numStreams` streams one after another each, until `signal` aborts; then summarises them. */
export async function runProbe(target: LoadTarget, shape: RequestShape, prompts: readonly string[], numStreams: number, signal: AbortSignal): Promise<ProbeResult> {
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
