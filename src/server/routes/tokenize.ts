import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { checkTokenIds, findServedModel, type PoolingModel, type RouteOptions } from "../route-context.ts";
import { DetokenizeRequestSchema, TokenizeRequestSchema } from "../schemas.ts";
import type { ServingState } from "../serving-state.ts";

/** vLLM's and llama-server's tokenizer routes; both spellings of their fields are accepted and answered. */
export const tokenizeRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  app.post("/tokenize", { schema: { body: TokenizeRequestSchema } }, async (request) => {
    const body = request.body;
    const served = requireServedModel(options.serving, body.model);
    const text = body.prompt ?? body.content ?? "";
    const addSpecial = body.add_special_tokens ?? body.add_special ?? true;
    const tokens = addSpecial ? served.engine.tokenizeWithSpecials(text) : served.engine.tokenize(text);
    return { tokens, count: tokens.length, max_model_len: served.engine.info.contextSize };
  });

  app.post("/detokenize", { schema: { body: DetokenizeRequestSchema } }, async (request) => {
    const body = request.body;
    const served = requireServedModel(options.serving, body.model);
    checkTokenIds(served.engine, body.tokens, "tokens");
    const text = served.engine.detokenize(body.tokens);
    return { prompt: text, content: text };
  });
};

/** Any model the server serves, the generator by default: each has its own tokenizer. */
function requireServedModel(serving: ServingState, model: string | null | undefined): PoolingModel {
  return findServedModel(serving, model, null);
}
