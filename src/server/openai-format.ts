/**
 * Builders for OpenAI's response shapes, kept apart from the routes so both routes share one spelling of
 * usage, finish reasons and logprobs.
 */
import type { SampledLogprobs, TokenId } from "../engine/engine.ts";
import type { FinishReason } from "../scheduler/request.ts";

export type OpenAiFinishReason = "stop" | "length" | "tool_calls";

/** JSON has no -Infinity; vLLM reports impossible tokens with this floor too. */
const MIN_LOGPROB = -9999;

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** As OpenAI reports prompt caching: prompt tokens whose KV came from the prefix cache. */
  prompt_tokens_details: { cached_tokens: number };
}

export function toUsage(numPromptTokens: number, numCompletionTokens: number, numCachedTokens = 0): Usage {
  return {
    prompt_tokens: numPromptTokens,
    completion_tokens: numCompletionTokens,
    total_tokens: numPromptTokens + numCompletionTokens,
    prompt_tokens_details: { cached_tokens: Math.min(numCachedTokens, numPromptTokens) },
  };
}

/** "abort" reaches only a client that has gone; "error" is turned into an error response before this. */
export function toOpenAiFinishReason(reason: FinishReason): OpenAiFinishReason {
  return reason === "length" ? "length" : "stop";
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function finiteLogprob(logprob: number): number {
  return Number.isFinite(logprob) ? logprob : MIN_LOGPROB;
}

/** The text `token` adds after `previous` (null at the start of a text). */
export type TokenText = (previous: TokenId | null, token: TokenId) => string;

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

/**
 * Legacy completions logprobs. `offset` is where this run of tokens starts in the choice's text and `previous`
 * the token before it (the prompt's last), so every token's text carries its leading space.
 */
export function toCompletionLogprobs(
  tokens: readonly TokenId[],
  logprobs: readonly SampledLogprobs[],
  tokenText: TokenText,
  offset: number,
  previous: TokenId | null,
): CompletionLogprobs {
  const result: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let position = offset;
  let before = previous;
  tokens.forEach((token, index) => {
    const sampled = logprobs[index];
    const text = tokenText(before, token);
    result.tokens.push(text);
    result.token_logprobs.push(finiteLogprob(sampled?.logprob ?? Number.NEGATIVE_INFINITY));
    result.top_logprobs.push(
      Object.fromEntries(
        (sampled?.top ?? []).map((entry) => [tokenText(before, entry.token), finiteLogprob(entry.logprob)]),
      ),
    );
    result.text_offset.push(position);
    position += text.length;
    before = token;
  });
  return result;
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export function toChatLogprobs(
  tokens: readonly TokenId[],
  logprobs: readonly SampledLogprobs[],
  tokenText: TokenText,
  previous: TokenId | null,
): ChatTokenLogprob[] {
  return tokens.map((token, index) => {
    const sampled = logprobs[index];
    const before = index === 0 ? previous : (tokens[index - 1] ?? null);
    const text = tokenText(before, token);
    return {
      token: text,
      logprob: finiteLogprob(sampled?.logprob ?? Number.NEGATIVE_INFINITY),
      bytes: [...Buffer.from(text, "utf8")],
      top_logprobs: (sampled?.top ?? []).map((entry) => {
        const entryText = tokenText(before, entry.token);
        return { token: entryText, logprob: finiteLogprob(entry.logprob), bytes: [...Buffer.from(entryText, "utf8")] };
      }),
    };
  });
}
