/**
 * Runs in a worker thread so the benchmark's HTTP clients parse SSE on their own event loop, not the server's.
 * Receives { baseUrl, model, prompts, maxTokens }, opens one streamed completion per prompt at once, and posts
 * back the wall time and the tokens the server reported in its usage chunks.
 */
import { parentPort } from "node:worker_threads";

interface LoadRequest {
  readonly baseUrl: string;
  readonly model: string;
  readonly prompts: readonly string[];
  readonly maxTokens: number;
}

async function streamOne(request: LoadRequest, prompt: string): Promise<number> {
  const response = await fetch(`${request.baseUrl}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: request.model,
      prompt,
      max_tokens: request.maxTokens,
      temperature: 0,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  const decoder = new TextDecoder();
  let buffer = "";
  let completionTokens = 0;
  for await (const bytes of response.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end !== -1) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
      // Only the usage chunk is parsed: the clients share this machine's two cores with the server.
      if (!frame.startsWith("data: ") || !frame.includes('"usage":{')) continue;
      const chunk = JSON.parse(frame.slice(6)) as { usage?: { completion_tokens: number } | null };
      if (chunk.usage != null) completionTokens = chunk.usage.completion_tokens;
    }
  }
  return completionTokens;
}

parentPort?.on("message", (request: LoadRequest) => {
  const startMs = performance.now();
  Promise.all(request.prompts.map((prompt) => streamOne(request, prompt))).then(
    (counts) =>
      parentPort?.postMessage({
        durationMs: performance.now() - startMs,
        numTokens: counts.reduce((a, b) => a + b, 0),
      }),
    (error: unknown) => parentPort?.postMessage({ error: String(error) }),
  );
});
