/**
 * Many seeded sampled requests submitted straight to a model server's engine loop, counted by outcome: the sample
 * the distribution tests compare.
 */
import type { SamplingParams, TokenId } from "../../src/engine/engine.ts";
import type { RequestId } from "../../src/scheduler/request.ts";
import type { ModelServer } from "./model-server.ts";

export interface OutcomeSampling {
  readonly prompt: string;
  /** Requests' seeds are firstSeed, firstSeed + 1, … */
  readonly firstSeed: number;
  readonly numRequests: number;
  readonly maxTokens: number;
  readonly ignoreEos: boolean;
  /** The settings of every request; its seed is replaced. */
  readonly sampling: SamplingParams;
  /** A request's outcome from its generated tokens; throw to fail the sample. */
  readonly outcomeOf: (tokens: readonly TokenId[], finishReason: string) => string;
}

/** How many requests had each outcome, submitted 128 at a time. */
export async function sampleOutcomes(server: ModelServer, options: OutcomeSampling): Promise<Map<string, number>> {
  const prompt = server.runtime.engine.tokenize(options.prompt, { addBos: true });
  const histogram = new Map<string, number>();
  const batch = 128;
  for (let start = 0; start < options.numRequests; start += batch) {
    await Promise.all(
      Array.from(
        { length: Math.min(batch, options.numRequests - start) },
        (_, offset) =>
          new Promise<void>((resolve, reject) => {
            const tokens: TokenId[] = [];
            const seed = options.firstSeed + start + offset;
            const isAccepted = server.runtime.loop.submit({
              id: `sample-${seed}-${performance.now()}` as RequestId,
              promptTokens: prompt,
              params: {
                maxTokens: options.maxTokens,
                sampling: { ...options.sampling, seed },
                stopStrings: [],
                stopTokens: [],
                ignoreEos: options.ignoreEos,
              },
              sink: {
                onDelta: (delta) => tokens.push(...delta.tokens),
                onFinish: (output) => {
                  if (output.error !== null) {
                    reject(output.error);
                    return;
                  }
                  try {
                    const key = options.outcomeOf(tokens, output.finishReason);
                    histogram.set(key, (histogram.get(key) ?? 0) + 1);
                    resolve();
                  } catch (error) {
                    reject(error);
                  }
                },
              },
              arrivalAtMs: performance.now(),
            });
            if (!isAccepted) reject(new Error("queue full"));
          }),
      ),
    );
  }
  return histogram;
}
