import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { checkTokenIds, type RouteOptions, requireModel } from "../route-context.ts";
import { DetokenizeRequestSchema, TokenizeRequestSchema } from "../schemas.ts";

/** vLLM's and llama-server's tokenizer routes; both spellings of their fields are accepted and answered. */
export const tokenizeRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  app.post("/tokenize", { schema: { body: TokenizeRequestSchema } }, async (request) => {
    const body = request.body;
    const runtime = requireModel(options.serving, body.model);
    const text = body.prompt ?? body.content ?? "";
    const addSpecial = body.add_special_tokens ?? body.add_special ?? true;
    const tokens = runtime.engine.tokenize(text, { addBos: addSpecial });
    return { tokens, count: tokens.length, max_model_len: runtime.engine.info.contextSize };
  });

  app.post("/detokenize", { schema: { body: DetokenizeRequestSchema } }, async (request) => {
    const body = request.body;
    const runtime = requireModel(options.serving, body.model);
    checkTokenIds(runtime.engine, body.tokens, "tokens");
    const text = runtime.engine.detokenize(body.tokens);
    return { prompt: text, content: text };
  });
};
