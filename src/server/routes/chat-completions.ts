import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { ChatMessage } from "../../engine/engine.ts";
import { tokenTextAfter } from "../../scheduler/incremental-detokenizer.ts";
import { collectChoices, streamChoices, sumCompletionTokens } from "../choice-stream.ts";
import { PagodaError } from "../errors.ts";
import type { ChoiceSpec } from "../generation.ts";
import { checkContextLength, toGenerationParams } from "../generation-params.ts";
import { nowSeconds, type TokenText, toChatLogprobs, toOpenAiFinishReason, toUsage } from "../openai-format.ts";
import { resolveOutputConstraints } from "../output-constraints.ts";
import {
  checkGenerationLimits,
  checkMaxTokens,
  checkPromptTokens,
  DEFAULT_REQUEST_LIMITS,
  defaultMaxTokens,
} from "../request-limits.ts";
import { type RouteOptions, requireModel, startGeneration } from "../route-context.ts";
import { type ChatCompletionRequest, ChatCompletionRequestSchema } from "../schemas.ts";
import { EventStream } from "../sse.ts";

export const chatCompletionsRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  const limits = options.limits ?? DEFAULT_REQUEST_LIMITS;
  app.post("/v1/chat/completions", { schema: { body: ChatCompletionRequestSchema } }, async (request, reply) => {
    const body = request.body;
    const runtime = requireModel(options.serving, body.model);
    rejectChatUnsupported(body);
    checkGenerationLimits(body, limits);
    const requestedMaxTokens = body.max_completion_tokens ?? body.max_tokens ?? null;
    checkMaxTokens(
      requestedMaxTokens,
      body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens",
      limits,
    );
    const constraints = resolveOutputConstraints(body, runtime.engine, options.constraints);
    const rendered = runtime.engine.renderChat(toChatMessages(body.messages));
    const contextSize = runtime.engine.info.contextSize;
    checkPromptTokens(rendered.tokens.length, "messages", limits);
    checkContextLength(rendered.tokens.length, requestedMaxTokens, contextSize, "messages");
    // Without max_tokens, chat generates until the context is full, unless --max-tokens-limit is lower.
    const maxTokens = requestedMaxTokens ?? defaultMaxTokens(contextSize - rendered.tokens.length, limits);
    const topLogprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : null;
    const ordinal = options.nextRequestOrdinal();
    const choices = Array.from(
      { length: body.n ?? 1 },
      (_, index): ChoiceSpec => ({
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
          constraints,
        }),
      }),
    );
    const { generation, deadline } = startGeneration(
      request,
      reply,
      runtime,
      choices,
      body.n ?? 1,
      options,
      constraints,
    );
    try {
      const base = {
        id: `chatcmpl-${generation.id}`,
        created: nowSeconds(),
        model: runtime.modelId,
        system_fingerprint: "pagoda",
      };
      const engine = runtime.engine;
      const tokenText: TokenText = (previous, token) =>
        tokenTextAfter((tokens) => engine.detokenize(tokens), previous, token);
      const promptLastToken = rendered.tokens.at(-1) ?? null;
      const includeUsage = body.stream_options?.include_usage === true;

      if (body.stream === true) {
        const stream = new EventStream(reply, deadline.signal);
        // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
        const chunk = { ...base, object: "chat.completion.chunk" as const, ...(includeUsage ? { usage: null } : {}) };
        const previous = choices.map(() => promptLastToken);
        for (const choice of choices) {
          const delta = { role: "assistant", content: "" };
          await stream.send({
            ...chunk,
            choices: [{ index: choice.index, delta, logprobs: null, finish_reason: null }],
          });
        }
        const numCompletionTokens = await streamChoices(
          generation,
          stream,
          {
            delta: (index, { text, tokens, logprobs }) => {
              if (text.length === 0 && topLogprobs === null) return null;
              const content =
                topLogprobs === null ? null : toChatLogprobs(tokens, logprobs, tokenText, previous[index] ?? null);
              previous[index] = tokens.at(-1) ?? previous[index] ?? null;
              const chunkLogprobs = content === null ? null : { content, refusal: null };
              return {
                ...chunk,
                choices: [{ index, delta: { content: text }, logprobs: chunkLogprobs, finish_reason: null }],
              };
            },
            finish: (index, reason) => ({
              ...chunk,
              choices: [{ index, delta: {}, logprobs: null, finish_reason: reason }],
            }),
          },
          deadline,
        );
        if (includeUsage)
          await stream.send({
            ...chunk,
            choices: [],
            usage: toUsage(rendered.tokens.length, numCompletionTokens, generation.numCachedTokens),
          });
        await stream.done();
        return reply;
      }

      const results = await collectChoices(generation, deadline);
      return {
        ...base,
        object: "chat.completion" as const,
        choices: results.map((result) => ({
          index: result.index,
          message: { role: "assistant" as const, content: result.text, refusal: null },
          logprobs:
            topLogprobs === null
              ? null
              : { content: toChatLogprobs(result.tokens, result.logprobs, tokenText, promptLastToken), refusal: null },
          finish_reason: toOpenAiFinishReason(result.output.finishReason),
        })),
        usage: toUsage(rendered.tokens.length, sumCompletionTokens(results), generation.numCachedTokens),
      };
    } finally {
      deadline.clear();
    }
  });
};

function rejectChatUnsupported(body: ChatCompletionRequest): void {
  if (body.tools != null && body.tools.length > 0 && body.tool_choice !== "none") {
    throw new PagodaError("PAGODA_ERR_UNSUPPORTED", "tools are not supported", { param: "tools" });
  }
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "top_logprobs requires logprobs to be true", {
      param: "top_logprobs",
    });
  }
}

function toChatMessages(messages: ChatCompletionRequest["messages"]): ChatMessage[] {
  return messages.map((message, index) => {
    const content = message.content;
    if (content == null || typeof content === "string") return { role: message.role, content: content ?? "" };
    const texts = content.map((part, partIndex) => {
      if (part.type === "text" && typeof part.text === "string") return part.text;
      throw new PagodaError("PAGODA_ERR_UNSUPPORTED", `Content parts of type ${part.type} are not supported`, {
        param: `messages[${index}].content[${partIndex}]`,
      });
    });
    return { role: message.role, content: texts.join("") };
  });
}
