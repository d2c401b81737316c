import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { ChatMessage, TokenId } from "../../engine/engine.ts";
import { PagodaError } from "../errors.ts";
import { Generation, type ChoiceSpec } from "../generation.ts";
import { checkContextLength, rejectUnsupported, toGenerationParams } from "../generation-params.ts";
import { nowSeconds, toChatLogprobs, toOpenAiFinishReason, toUsage } from "../openai-format.ts";
import { requireModel, type RouteOptions } from "../route-context.ts";
import { ChatCompletionRequestSchema, type ChatCompletionRequest } from "../schemas.ts";
import { EventStream, onClientGone } from "../sse.ts";

export const chatCompletionsRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  app.post("/v1/chat/completions", { schema: { body: ChatCompletionRequestSchema } }, async (request, reply) => {
    const body = request.body;
    const runtime = requireModel(options.serving, body.model);
    rejectChatUnsupported(body);
    const rendered = runtime.engine.renderChat(toChatMessages(body.messages));
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? null;
    const contextSize = runtime.engine.info.contextSize;
    checkContextLength(rendered.tokens.length, maxTokens, contextSize, "messages");
    const topLogprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : null;
    const ordinal = options.nextRequestOrdinal();
    const choices = Array.from({ length: body.n ?? 1 }, (_, index): ChoiceSpec => ({
      index,
      promptTokens: rendered.tokens,
      params: toGenerationParams({
        body,
        numPromptTokens: rendered.tokens.length,
        maxTokens,
        contextSize,
        choiceIndex: index,
        serverSeed: options.serverSeed,
        requestOrdinal: ordinal,
        topLogprobs,
        extraStopStrings: rendered.stopStrings,
        extraStopTokens: rendered.stopTokens,
      }),
    }));
    const generation = Generation.start(runtime.loop, choices);
    onClientGone(reply, () => generation.abort());
    request.generation = generation;
    const base = { id: `chatcmpl-${generation.id}`, created: nowSeconds(), model: runtime.modelId, system_fingerprint: "pagoda" };
    const tokenText = (token: TokenId): string => runtime.engine.detokenize([token]);
    const includeUsage = body.stream_options?.include_usage === true;

    if (body.stream === true) {
      const stream = new EventStream(reply);
      const chunk = { ...base, object: "chat.completion.chunk" as const, ...(includeUsage ? { usage: null } : {}) };
      for (const choice of choices) {
        const delta = { role: "assistant", content: "" };
        await stream.send({ ...chunk, choices: [{ index: choice.index, delta, logprobs: null, finish_reason: null }] });
      }
      let numCompletionTokens = 0;
      for await (const event of generation) {
        if (event.kind === "delta") {
          const { text, tokens, logprobs } = event.delta;
          if (text.length === 0 && topLogprobs === null) continue;
          const chunkLogprobs = topLogprobs === null ? null : { content: toChatLogprobs(tokens, logprobs, tokenText), refusal: null };
          await stream.send({ ...chunk, choices: [{ index: event.index, delta: { content: text }, logprobs: chunkLogprobs, finish_reason: null }] });
          continue;
        }
        numCompletionTokens += event.output.numOutputTokens;
        if (event.output.finishReason === "error") {
          await stream.send({ error: { message: "The engine failed while generating", type: "server_error", param: null, code: "engine_error" } });
          continue;
        }
        const finishReason = toOpenAiFinishReason(event.output.finishReason);
        await stream.send({ ...chunk, choices: [{ index: event.index, delta: {}, logprobs: null, finish_reason: finishReason }] });
      }
      if (includeUsage) await stream.send({ ...chunk, choices: [], usage: toUsage(rendered.tokens.length, numCompletionTokens) });
      await stream.done();
      return reply;
    }

    const results = await generation.collect();
    const failed = results.find((result) => result.output.finishReason === "error");
    if (failed !== undefined) throw new PagodaError("PAGODA_ERR_ENGINE", "The engine failed while generating", { cause: failed.output.error });
    const numCompletionTokens = results.reduce((sum, result) => sum + result.output.numOutputTokens, 0);
    return {
      ...base,
      object: "chat.completion" as const,
      choices: results.map((result) => ({
        index: result.index,
        message: { role: "assistant" as const, content: result.text, refusal: null },
        logprobs: topLogprobs === null ? null : { content: toChatLogprobs(result.tokens, result.logprobs, tokenText), refusal: null },
        finish_reason: toOpenAiFinishReason(result.output.finishReason),
      })),
      usage: toUsage(rendered.tokens.length, numCompletionTokens),
    };
  });
};

function rejectChatUnsupported(body: ChatCompletionRequest): void {
  rejectUnsupported(body);
  if (body.tools != null && body.tools.length > 0 && body.tool_choice !== "none") {
    throw new PagodaError("PAGODA_ERR_UNSUPPORTED", "tools are not supported", { param: "tools" });
  }
  if (body.response_format != null && body.response_format.type !== "text") {
    throw new PagodaError("PAGODA_ERR_UNSUPPORTED", `response_format ${body.response_format.type} is not supported`, {
      param: "response_format",
    });
  }
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "top_logprobs requires logprobs to be true", { param: "top_logprobs" });
  }
}

function toChatMessages(messages: ChatCompletionRequest["messages"]): ChatMessage[] {
  return messages.map((message, index) => {
    const content = message.content;
    if (content == null || typeof content === "string") return { role: message.role, content: content ?? "" };
    const texts = content.map((part, partIndex) => {
      if (part.type === "text" && typeof part["text"] === "string") return part["text"];
      throw new PagodaError("PAGODA_ERR_UNSUPPORTED", `Content parts of type ${part.type} are not supported`, {
        param: `messages[${index}].content[${partIndex}]`,
      });
    });
    return { role: message.role, content: texts.join("") };
  });
}
