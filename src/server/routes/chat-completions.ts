import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { tokenTextAfter } from "../../scheduler/incremental-detokenizer.ts";
import { GENERIC_SYNTAX } from "../../tools/index.ts";
import { toChatMessages } from "../chat-messages.ts";
import { collectChoices, streamChoices, sumCompletionTokens } from "../choice-stream.ts";
import { PagodaError } from "../errors.ts";
import type { ChoiceSpec } from "../generation.ts";
import { checkContextLength, toGenerationParams } from "../generation-params.ts";
import { nowSeconds, type TokenText, toChatLogprobs, toOpenAiFinishReason, toUsage } from "../openai-format.ts";
import { type OutputConstraints, rejectConflicts, resolveOutputConstraints } from "../output-constraints.ts";
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
import { ToolCallOutput } from "../tool-call-output.ts";
import { resolveToolRequest, type ToolRequest } from "../tool-request.ts";

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
    const engine = runtime.engine;
    const tools = resolveToolRequest(body, engine);
    const constraints = withTools(resolveOutputConstraints(body, engine, options.constraints), tools, body);
    const messages = toChatMessages(
      body.messages,
      engine.info.toolSyntax,
      tools?.syntax === GENERIC_SYNTAX ? tools.definitions : null,
    );
    const rendered = engine.renderChat(messages, tools?.tools ?? null);
    const contextSize = engine.info.contextSize;
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
    if (tools !== null) options.metrics.observeToolRequest(tools.choiceKind);
    // One reader of tool calls per choice; null without tools.
    const toolOutputs = choices.map(() => (tools === null ? null : new ToolCallOutput(tools.syntax, tools.toolNames)));
    const observeToolOutput = (output: ToolCallOutput | null) => {
      if (output !== null)
        options.metrics.observeToolOutput(output.result.toolCalls.length, output.result.parseFailure !== null);
    };
    try {
      const base = {
        id: `chatcmpl-${generation.id}`,
        created: nowSeconds(),
        model: runtime.modelId,
        system_fingerprint: "pagoda",
      };
      const tokenText: TokenText = (previous, token) =>
        tokenTextAfter((tokens) => engine.detokenize(tokens), previous, token);
      const promptLastToken = rendered.tokens.at(-1) ?? null;
      const includeUsage = body.stream_options?.include_usage === true;

      if (body.stream === true) {
        const stream = new EventStream(reply, deadline.signal);
        // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
        const chunk = { ...base, object: "chat.completion.chunk" as const, ...(includeUsage ? { usage: null } : {}) };
        const chunkOf = (
          index: number,
          delta: object,
          logprobs: unknown = null,
          finishReason: string | null = null,
        ) => ({
          ...chunk,
          choices: [{ index, delta, logprobs, finish_reason: finishReason }],
        });
        const previous = choices.map(() => promptLastToken);
        for (const choice of choices) await stream.send(chunkOf(choice.index, { role: "assistant", content: "" }));
        const numCompletionTokens = await streamChoices(
          generation,
          stream,
          {
            delta: (index, { text, tokens, logprobs }) => {
              const content =
                topLogprobs === null ? null : toChatLogprobs(tokens, logprobs, tokenText, previous[index] ?? null);
              previous[index] = tokens.at(-1) ?? previous[index] ?? null;
              const chunkLogprobs = content === null ? null : { content, refusal: null };
              const toolOutput = toolOutputs[index] ?? null;
              const deltas =
                toolOutput === null ? (text.length === 0 ? [] : [{ content: text }]) : toolOutput.push(text);
              if (deltas.length === 0) return chunkLogprobs === null ? [] : [chunkOf(index, {}, chunkLogprobs)];
              return deltas.map((delta, position) => chunkOf(index, delta, position === 0 ? chunkLogprobs : null));
            },
            finish: (index, reason) => {
              const toolOutput = toolOutputs[index] ?? null;
              if (toolOutput === null) return [chunkOf(index, {}, null, reason)];
              const last = toolOutput.finish().map((delta) => chunkOf(index, delta));
              observeToolOutput(toolOutput);
              return [...last, chunkOf(index, {}, null, toolOutput.finishReason(reason))];
            },
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
        choices: results.map((result) => {
          const reason = toOpenAiFinishReason(result.output.finishReason);
          const toolOutput = toolOutputs[result.index] ?? null;
          let message: object = { role: "assistant" as const, content: result.text, refusal: null };
          let finishReason = reason;
          if (toolOutput !== null) {
            toolOutput.push(result.text);
            toolOutput.finish();
            observeToolOutput(toolOutput);
            const { content, toolCalls } = toolOutput.result;
            message = {
              role: "assistant",
              content,
              refusal: null,
              ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
            };
            finishReason = toolOutput.finishReason(reason);
          }
          return {
            index: result.index,
            message,
            logprobs:
              topLogprobs === null
                ? null
                : {
                    content: toChatLogprobs(result.tokens, result.logprobs, tokenText, promptLastToken),
                    refusal: null,
                  },
            finish_reason: finishReason,
          };
        }),
        usage: toUsage(rendered.tokens.length, sumCompletionTokens(results), generation.numCachedTokens),
      };
    } finally {
      deadline.clear();
    }
  });
};

/** The tools' grammar joins the request's logit biases; tools and another output constraint are a 400. */
function withTools(
  constraints: OutputConstraints,
  tools: ToolRequest | null,
  body: ChatCompletionRequest,
): OutputConstraints {
  if (tools === null) return constraints;
  if (constraints.kind !== null) {
    throw new PagodaError(
      "PAGODA_ERR_INVALID_REQUEST",
      `tools cannot be combined with an output constraint (${constraints.kind}); describe the output in a tool's parameters instead`,
      { param: "tools" },
    );
  }
  if (tools.grammar !== null) rejectConflicts(body, "tool_choice");
  return { ...constraints, grammar: tools.grammar, grammarTriggers: tools.grammarTriggers };
}

function rejectChatUnsupported(body: ChatCompletionRequest): void {
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "top_logprobs requires logprobs to be true", {
      param: "top_logprobs",
    });
  }
}
