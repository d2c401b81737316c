/**
 * Reranking with a cross-encoder served as the model (a GGUF whose pooling is `rank`, or `--pooling rank`): each
 * (query, document) pair becomes one input of the embedding batcher, so a 100-document request is scored in
 * ⌈100 / --embedding-parallel⌉ decodes. The shapes clients send:
 * - `/v1/rerank`, `/rerank`: Jina's and Cohere v1's (`query`, `documents` as strings or `{text}`, `top_n`,
 *   `return_documents`, default true), as llama-server and vLLM answer them;
 * - `/v2/rerank`: Cohere v2's (`return_documents` default false);
 * - `/rerank` with `texts`: TEI's (`raw_scores`, `return_text`), answered as a bare array of `{index, score}`;
 * - `/v1/score`: vLLM's (`text_1` against each of `text_2`), in input order.
 * Scores are in [0, 1]: the sigmoid of a one-logit head, the softmax probability of the first of several logits, or
 * a Qwen3 reranker's P(yes) as llama.cpp outputs it. `raw_scores` returns the head's first output as llama-server does.
 */
import { randomUUID } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { TokenId } from "../../engine/engine.ts";
import { PagodaError } from "../errors.ts";
import { embedPooled } from "../pooled-inputs.ts";
import { checkPromptTokens, DEFAULT_REQUEST_LIMITS } from "../request-limits.ts";
import { type PoolingModel, type RouteOptions, requirePoolingModel } from "../route-context.ts";

/** Cohere's limit on documents per request. */
const MAX_DOCUMENTS = 1000;

const document = z.union([z.string(), z.object({ text: z.string() })]);
const RerankRequestSchema = z.object({
  model: z.string().min(1).nullish(),
  query: z.string(),
  documents: z.array(document).max(MAX_DOCUMENTS).optional(),
  texts: z.array(z.string()).max(MAX_DOCUMENTS).optional(),
  top_n: z.int().min(0).nullish(),
  return_documents: z.boolean().nullish(),
  raw_scores: z.boolean().nullish(),
  return_text: z.boolean().nullish(),
});
type RerankRequest = z.infer<typeof RerankRequestSchema>;

const ScoreRequestSchema = z.object({
  model: z.string().min(1).nullish(),
  text_1: z.string(),
  text_2: z.union([z.string(), z.array(z.string()).min(1).max(MAX_DOCUMENTS)]),
});

interface Scored {
  readonly index: number;
  readonly score: number;
  readonly raw: number;
  readonly numTokens: number;
}

export const rerankRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  const rerank = (style: "v1" | "v2") =>
    app.post(
      style === "v2" ? "/v2/rerank" : "/v1/rerank",
      { schema: { body: RerankRequestSchema } },
      async (request, reply) => answer(request.body, style, await score(request.body, request, reply)),
    );
  rerank("v1");
  rerank("v2");
  app.post("/rerank", { schema: { body: RerankRequestSchema } }, async (request, reply) => {
    const body = request.body;
    const scored = await score(body, request, reply);
    if (body.texts === undefined) return answer(body, "v1", scored);
    // TEI: a bare array, sorted, `score` raw or normalized, `text` on request.
    return sortedTop(scored, body.top_n ?? null).map((item) => ({
      index: item.index,
      score: body.raw_scores === true ? item.raw : item.score,
      ...(body.return_text === true ? { text: body.texts?.[item.index] ?? "" } : {}),
    }));
  });
  app.post("/v1/score", { schema: { body: ScoreRequestSchema } }, async (request, reply) => {
    const body = request.body;
    const served = requirePoolingModel(options, body.model, "rerank");
    const documents = typeof body.text_2 === "string" ? [body.text_2] : body.text_2;
    const scored = await scorePairs(served, body.text_1, documents, options, request, reply);
    const numTokens = scored.reduce((sum, item) => sum + item.numTokens, 0);
    return {
      id: `score-${randomUUID().replaceAll("-", "")}`,
      object: "list" as const,
      model: served.modelId,
      data: scored.map((item) => ({ index: item.index, object: "score" as const, score: item.score })),
      usage: { prompt_tokens: numTokens, total_tokens: numTokens },
    };
  });

  async function score(body: RerankRequest, request: FastifyRequest, reply: FastifyReply): Promise<Scored[]> {
    const served = requirePoolingModel(options, body.model, "rerank");
    if (body.documents !== undefined && body.texts !== undefined) {
      throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "send documents or texts, not both", { param: "texts" });
    }
    const texts = body.texts ?? (body.documents ?? []).map((item) => (typeof item === "string" ? item : item.text));
    return scorePairs(served, body.query, texts, options, request, reply);
  }

  function answer(body: RerankRequest, style: "v1" | "v2", scored: readonly Scored[]) {
    const served = requirePoolingModel(options, body.model, "rerank");
    const withDocuments = body.return_documents ?? style === "v1";
    const texts = (body.documents ?? []).map((item) => (typeof item === "string" ? item : item.text));
    const numTokens = scored.reduce((sum, item) => sum + item.numTokens, 0);
    return {
      id: randomUUID(),
      model: served.modelId,
      object: "list" as const,
      results: sortedTop(scored, body.top_n ?? null).map((item) => ({
        index: item.index,
        relevance_score: body.raw_scores === true ? item.raw : item.score,
        ...(withDocuments ? { document: { text: texts[item.index] ?? "" } } : {}),
      })),
      usage: { prompt_tokens: numTokens, total_tokens: numTokens },
      meta: { api_version: { version: style === "v2" ? "2" : "1" }, billed_units: { search_units: 1 } },
    };
  }
};

async function scorePairs(
  served: PoolingModel,
  query: string,
  documents: readonly string[],
  options: RouteOptions,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<Scored[]> {
  const engine = served.engine;
  if (engine.info.pooling !== "rank") {
    throw new PagodaError(
      "PAGODA_ERR_UNSUPPORTED",
      "this model is not a reranker: serve a GGUF whose pooling is rank (a cross-encoder), or start with --pooling rank",
      { param: "model" },
    );
  }
  if (documents.length === 0) {
    throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "documents must not be empty", { param: "documents" });
  }
  const limits = options.limits ?? DEFAULT_REQUEST_LIMITS;
  const limit = Math.min(engine.info.contextSize, engine.info.trainContextSize);
  const inputs = documents.map((text, index): TokenId[] => {
    const tokens = engine.rerankInput(query, text);
    checkPromptTokens(tokens.length, "documents", limits);
    if (tokens.length > limit) {
      throw new PagodaError(
        "PAGODA_ERR_CONTEXT_LENGTH",
        `the query with document ${index} has ${tokens.length} tokens; the limit is ${limit}`,
        { param: `documents[${index}]` },
      );
    }
    return tokens;
  });
  const outputs = await embedPooled(served, inputs, "rerank", { request, reply, options });
  return outputs.map((output, index) => {
    const head = output.embedding;
    const raw = head[0] ?? Number.NaN;
    return { index, raw, score: relevance(head, engine.info.rankOutput), numTokens: output.numTokens };
  });
}

/**
 * The first label's probability: as output when the head outputs probabilities (a Qwen3 reranker's P(yes)), the
 * sigmoid of one logit, or the softmax probability of the first of several logits.
 */
export function relevance(head: readonly number[], output: "logits" | "probabilities"): number {
  if (output === "probabilities") return head[0] ?? 0;
  if (head.length <= 1) return 1 / (1 + Math.exp(-(head[0] ?? 0)));
  const max = Math.max(...head);
  const total = head.reduce((sum, value) => sum + Math.exp(value - max), 0);
  return Math.exp((head[0] ?? 0) - max) / total;
}

function sortedTop(scored: readonly Scored[], topN: number | null): Scored[] {
  const sorted = [...scored].sort((a, b) => b.score - a.score || a.index - b.index);
  return topN === null ? sorted : sorted.slice(0, topN);
}
