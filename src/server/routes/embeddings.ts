import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { PagodaError } from "../errors.ts";
import { embedPooled } from "../pooled-inputs.ts";
import { checkPromptTokens, DEFAULT_REQUEST_LIMITS } from "../request-limits.ts";
import { checkTokenIds, type RouteOptions, requirePoolingModel } from "../route-context.ts";
import { type EmbeddingRequest, EmbeddingRequestSchema } from "../schemas.ts";

export const embeddingsRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  const limits = options.limits ?? DEFAULT_REQUEST_LIMITS;
  app.post("/v1/embeddings", { schema: { body: EmbeddingRequestSchema } }, async (request, reply) => {
    const body = request.body;
    const served = requirePoolingModel(options, body.model, "embedding");
    const engine = served.engine;
    if (engine.info.pooling === "rank") {
      throw new PagodaError(
        "PAGODA_ERR_UNSUPPORTED",
        `The model \`${served.modelId}\` is a reranker: its output is a relevance score, not an embedding; use /v1/rerank`,
        { param: "model" },
      );
    }
    if (body.dimensions != null && body.dimensions > engine.info.embeddingSize) {
      throw new PagodaError(
        "PAGODA_ERR_UNSUPPORTED",
        `This model's embeddings have ${engine.info.embeddingSize} dimensions; dimensions can only shorten them`,
        { param: "dimensions" },
      );
    }
    // Matryoshka truncation as OpenAI's text-embedding-3 and vLLM do it: the first dimensions, normalised after.
    const size = body.dimensions ?? engine.info.embeddingSize;
    const inputs = toInputs(body.input);
    const limit = Math.min(engine.info.contextSize, engine.info.trainContextSize);
    const tokenized = inputs.map((input, index) => {
      if (typeof input === "string") {
        if (input.length === 0)
          throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "Input must not be empty", { param: `input[${index}]` });
        return engine.tokenizeWithSpecials(input);
      }
      checkTokenIds(engine, input, "input");
      return input;
    });
    tokenized.forEach((tokens, index) => {
      checkPromptTokens(tokens.length, "input", limits);
      if (tokens.length > limit) {
        throw new PagodaError(
          "PAGODA_ERR_CONTEXT_LENGTH",
          `Input ${index} has ${tokens.length} tokens; the limit is ${limit}`,
          { param: "input" },
        );
      }
    });
    const norm = body.embd_normalize ?? (body.normalize === false ? -1 : 2);
    const embedded = await embedPooled(served, tokenized, "embeddings", { request, reply, options });
    const results = embedded.map((result) => ({
      ...result,
      embedding: normalized(result.embedding.slice(0, size), norm),
    }));
    const isBase64 = body.encoding_format === "base64";
    const numTokens = results.reduce((sum, result) => sum + result.numTokens, 0);
    return {
      object: "list" as const,
      data: results.map((result, index) => ({
        object: "embedding" as const,
        index,
        embedding: isBase64 ? toBase64(result.embedding) : result.embedding,
      })),
      model: served.modelId,
      usage: { prompt_tokens: numTokens, total_tokens: numTokens },
    };
  });
};

function toInputs(input: EmbeddingRequest["input"]): (string | number[])[] {
  if (typeof input === "string") return [input];
  if (input.every((item): item is string => typeof item === "string")) return input;
  if (input.every((item): item is number => typeof item === "number")) return [input];
  return input as number[][];
}

/** Little-endian float32 bytes, as the `openai` SDK decodes them (it asks for base64 by default). */
function toBase64(embedding: readonly number[]): string {
  const floats = Float32Array.from(embedding);
  return Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).toString("base64");
}

/**
 * llama-server's `embd_normalize`: unit Euclidean length by default, as OpenAI's, vLLM's and llama-server's vectors
 * are, so a dot product is the cosine. A zero vector stays zero.
 */
export function normalized(embedding: readonly number[], norm: number): number[] {
  if (norm < 0) return [...embedding];
  let scale: number;
  if (norm === 0) {
    const maxAbs = embedding.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
    scale = maxAbs === 0 ? 0 : 32760 / maxAbs;
  } else {
    const sum = embedding.reduce((total, value) => total + Math.abs(value) ** norm, 0);
    scale = sum === 0 ? 0 : 1 / sum ** (1 / norm);
  }
  return embedding.map((value) => value * scale);
}
