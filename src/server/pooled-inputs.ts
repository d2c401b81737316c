/**
 * What the embedding and rerank routes share: their inputs go to the engine's pooling context, stop waiting when
 * the client goes away, are refused with a 429 when its queue is full, are counted by route, and are tracked so a
 * closing server lets them finish.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { EmbeddingQueueFullError } from "../engine/embedding-batcher.ts";
import type { EmbeddingResult, TokenId } from "../engine/engine.ts";
import type { PooledRoute } from "../metrics/pagoda-metrics.ts";
import { PagodaError } from "./errors.ts";
import type { PoolingModel, RouteOptions } from "./route-context.ts";
import { onClientGone } from "./sse.ts";

/** Seconds a client is told to wait when the embedding queue is full. */
const QUEUE_FULL_RETRY_AFTER_SECONDS = 1;

export async function embedPooled(
  served: PoolingModel,
  inputs: readonly (readonly TokenId[])[],
  route: PooledRoute,
  context: { readonly request: FastifyRequest; readonly reply: FastifyReply; readonly options: RouteOptions },
): Promise<EmbeddingResult[]> {
  const pooledRequests = context.options.pooledRequests;
  const aborted = pooledRequests?.start() ?? new AbortController();
  onClientGone(context.request, context.reply, () => aborted.abort(new Error("the client went away")));
  const results = await served.engine
    .embed(inputs, aborted.signal)
    .catch((error: unknown) => {
      if (error instanceof EmbeddingQueueFullError) {
        throw new PagodaError("PAGODA_ERR_QUEUE_FULL", `The server is at capacity for ${route}; retry later`, {
          retryAfterSeconds: QUEUE_FULL_RETRY_AFTER_SECONDS,
          cause: error,
        });
      }
      throw error;
    })
    .finally(() => pooledRequests?.finish(aborted));
  const numTokens = results.reduce((sum, result) => sum + result.numTokens, 0);
  context.options.metrics.observePooled(route, served.modelId, results.length, numTokens);
  return results;
}
