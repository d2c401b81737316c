import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { ServerEngine, TokenId } from "../../engine/engine.ts";
import { tokenTextAfter } from "../../scheduler/incremental-detokenizer.ts";
import { collectChoices, streamChoices, sumCompletionTokens } from "../choice-stream.ts";
import { PagodaError } from "../errors.ts";
import type { ChoiceSpec } from "../generation.ts";
import { checkContextLength, DEFAULT_COMPLETION_MAX_TOKENS, toGenerationParams } from "../generation-params.ts";
import { nowSeconds, type TokenText, toCompletionLogprobs, toOpenAiFinishReason, toUsage } from "../openai-format.ts";
import { resolveOutputConstraints } from "../output-constraints.ts";
import {
  checkGenerationLimits,
  checkMaxTokens,
  checkPromptTokens,
  DEFAULT_REQUEST_LIMITS,
  defaultMaxTokens,
} from "../request-limits.ts";
import { checkTokenIds, type RouteOptions, requireModel, startGeneration } from "../route-context.ts";
import { type CompletionRequest, CompletionRequestSchema } from "../schemas.ts";
import { EventStream } from "../sse.ts";

interface Prompt {
  readonly tokens: TokenId[];
  /** What `echo` repeats: the prompt as the client sent it. */
  readonly text: string;
}

export const completionsRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  const limits = options.limits ?? DEFAULT_REQUEST_LIMITS;
  app.post("/v1/completions", { schema: { body: CompletionRequestSchema } }, async (request, reply) => {
    const body = request.body;
    const runtime = requireModel(options.serving, body.model);
    const engine = runtime.engine;
    rejectCompletionUnsupported(body);
    checkGenerationLimits(body, limits);
    checkMaxTokens(body.max_tokens ?? null, "max_tokens", limits);
    const constraints = resolveOutputConstraints(body, engine, options.constraints);
    const prompts = toPrompts(engine, body.prompt);
    const n = body.n ?? 1;
    const maxTokens = body.max_tokens ?? defaultMaxTokens(DEFAULT_COMPLETION_MAX_TOKENS, limits);
    const ordinal = options.nextRequestOrdinal();
    const choices: ChoiceSpec[] = prompts.flatMap((prompt, promptIndex) => {
      checkPromptTokens(prompt.tokens.length, "prompt", limits);
      checkContextLength(prompt.tokens.length, maxTokens, engine.info.contextSize, "prompt");
      return Array.from({ length: n }, (_, choiceIndex): ChoiceSpec => {
        const index = promptIndex * n + choiceIndex;
        const params = toGenerationParams({
          body,
          numPromptTokens: prompt.tokens.length,
          maxTokens,
          contextSize: engine.info.contextSize,
          choiceIndex: index,
          serverSeed: options.serverSeed,
          requestOrdinal: ordinal,
          topLogprobs: body.logprobs ?? null,
          constraints,
        });
        return { index, promptTokens: prompt.tokens, params };
      });
    });
    const numPromptTokens = prompts.reduce((sum, prompt) => sum + prompt.tokens.length, 0);
    const { generation, deadline } = startGeneration(request, reply, runtime, choices, n, options, constraints);
    try {
      const promptOf = (index: number): Prompt | undefined => prompts[Math.floor(index / n)];
      const echoes = choices.map((choice) => (body.echo === true ? (promptOf(choice.index)?.text ?? "") : ""));
      const base = {
        id: `cmpl-${generation.id}`,
        object: "text_completion" as const,
        created: nowSeconds(),
        model: runtime.modelId,
      };
      const tokenText: TokenText = (previous, token) =>
        tokenTextAfter((tokens) => engine.detokenize(tokens), previous, token);
      const wantsLogprobs = body.logprobs != null;

      if (body.stream === true) {
        const stream = new EventStream(reply, deadline.signal);
        const includeUsage = body.stream_options?.include_usage === true;
        // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
        const chunk = { ...base, ...(includeUsage ? { usage: null } : {}) };
        // Per choice: where its next token starts in its text, and the token before it.
        const offsets = echoes.map((echo) => echo.length);
        const previous = choices.map((choice) => choice.promptTokens.at(-1) ?? null);
        for (const [index, echo] of echoes.entries()) {
          if (echo.length > 0)
            await stream.send({ ...chunk, choices: [{ index, text: echo, logprobs: null, finish_reason: null }] });
        }
        const numCompletionTokens = await streamChoices(
          generation,
          stream,
          {
            delta: (index, { text, tokens, logprobs }) => {
              if (text.length === 0 && !wantsLogprobs) return [];
              const offset = offsets[index] ?? 0;
              const chunkLogprobs = wantsLogprobs
                ? toCompletionLogprobs(tokens, logprobs, tokenText, offset, previous[index] ?? null)
                : null;
              // Offsets count token text, not streamed text: a held-back stop-string prefix streams later.
              offsets[index] = offset + (chunkLogprobs?.tokens.join("").length ?? text.length);
              previous[index] = tokens.at(-1) ?? previous[index] ?? null;
              return [{ ...chunk, choices: [{ index, text, logprobs: chunkLogprobs, finish_reason: null }] }];
            },
            finish: (index, reason) => [
              { ...chunk, choices: [{ index, text: "", logprobs: null, finish_reason: reason }] },
            ],
          },
          deadline,
        );
        if (includeUsage)
          await stream.send({
            ...base,
            choices: [],
            usage: toUsage(numPromptTokens, numCompletionTokens, generation.numCachedTokens),
          });
        await stream.done();
        return reply;
      }

      const results = await collectChoices(generation, deadline);
      return {
        ...base,
        choices: results.map((result) => {
          const echo = echoes[result.index] ?? "";
          const previous = promptOf(result.index)?.tokens.at(-1) ?? null;
          return {
            index: result.index,
            text: echo + result.text,
            logprobs: wantsLogprobs
              ? toCompletionLogprobs(result.tokens, result.logprobs, tokenText, echo.length, previous)
              : null,
            finish_reason: toOpenAiFinishReason(result.output.finishReason),
          };
        }),
        usage: toUsage(numPromptTokens, sumCompletionTokens(results), generation.numCachedTokens),
      };
    } finally {
      deadline.clear();
    }
  });
};

function rejectCompletionUnsupported(body: CompletionRequest): void {
  if (body.suffix != null && body.suffix.length > 0) {
    throw new PagodaError("PAGODA_ERR_UNSUPPORTED", "suffix is not supported", { param: "suffix" });
  }
  if (body.best_of != null && body.best_of > 1) {
    throw new PagodaError("PAGODA_ERR_UNSUPPORTED", "best_of greater than 1 is not supported", { param: "best_of" });
  }
  if (body.echo === true && body.logprobs != null) {
    throw new PagodaError("PAGODA_ERR_UNSUPPORTED", "echo together with logprobs is not supported", { param: "echo" });
  }
}

function toPrompts(engine: ServerEngine, prompt: CompletionRequest["prompt"]): Prompt[] {
  if (typeof prompt === "string") return [textPrompt(engine, prompt)];
  if (prompt.every((item): item is string => typeof item === "string"))
    return prompt.map((item) => textPrompt(engine, item));
  if (prompt.every((item): item is number => typeof item === "number")) return [tokenPrompt(engine, prompt)];
  return prompt.map((item) => tokenPrompt(engine, item as number[]));
}

function textPrompt(engine: ServerEngine, text: string): Prompt {
  const tokens = engine.tokenize(text, { addBos: true });
  if (tokens.length === 0)
    throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", "The prompt is empty", { param: "prompt" });
  return { tokens, text };
}

function tokenPrompt(engine: ServerEngine, tokens: number[]): Prompt {
  checkTokenIds(engine, tokens, "prompt");
  return { tokens, text: engine.detokenize(tokens) };
}
