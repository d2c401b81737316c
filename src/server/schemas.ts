/**
 * Request bodies of the OpenAI-compatible routes, as zod schemas. Ranges follow OpenAI's API description;
 * `top_k`, `min_p` and `ignore_eos` are the extensions vLLM and llama-server accept. Unknown fields are ignored,
 * as vLLM does; known fields pagoda cannot honour are rejected in the route, never silently dropped.
 */
import { z } from "zod";
import { constraintFields } from "./constraint-fields.ts";

const tokenId = z.number().int().min(0);
// How many stop strings, how long, and how large n may be are the server's limits (request-limits.ts), checked
// with messages that name the limit.
const stop = z.union([z.string(), z.array(z.string())]).nullish();

/** Sampling fields shared by both generation routes. */
const samplingFields = {
  // Optional, as in vLLM and llama-server: a request naming no model is served by the one this server serves.
  model: z.string().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  seed: z.number().int().nullish(),
  n: z.number().int().min(1).nullish(),
  stop,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  user: z.string().nullish(),
  ignore_eos: z.boolean().nullish(),
  // vLLM's extension: lower runs first and is preempted last. Clients may only yield (>= 0, the default being 0):
  // a negative priority would let any caller preempt everyone else.
  priority: z.int().min(0).max(1_000_000).nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  ...constraintFields,
};

export const CompletionRequestSchema = z.object({
  ...samplingFields,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(tokenId).min(1),
    z.array(z.array(tokenId).min(1)).min(1),
  ]),
  max_tokens: z.number().int().min(1).nullish(),
  echo: z.boolean().nullish(),
  logprobs: z.number().int().min(0).max(20).nullish(),
  best_of: z.number().int().min(1).nullish(),
  suffix: z.string().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const contentPart = z.object({ type: z.string() }).passthrough();

/** An assistant's call as OpenAI sends it back in the history; `arguments` is JSON text. */
const messageToolCall = z.object({
  id: z.string().min(1).max(256),
  type: z.literal("function").optional(),
  function: z.object({ name: z.string().min(1), arguments: z.string() }),
});

const chatMessage = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(z.union([textPart, contentPart]))]).nullish(),
  name: z.string().nullish(),
  tool_calls: z.array(messageToolCall).nullish(),
  tool_call_id: z.string().nullish(),
});

/**
 * `tools[i]`: the type is checked by the route, so a custom tool gets a 400 naming it rather than a schema error;
 * `parameters` is a JSON schema, checked by the tool grammar's converter.
 */
const tool = z.object({
  type: z.string(),
  function: z
    .object({
      name: z.string(),
      description: z.string().nullish(),
      parameters: z.unknown().optional(),
      strict: z.boolean().nullish(),
    })
    .optional(),
});

const toolChoice = z.union([
  z.enum(["none", "auto", "required"]),
  z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) }),
]);

export const ChatCompletionRequestSchema = z.object({
  ...samplingFields,
  messages: z.array(chatMessage).min(1),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(tool).nullish(),
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

export const EmbeddingRequestSchema = z.object({
  model: z.string().min(1).nullish(),
  input: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(tokenId).min(1),
    z.array(z.array(tokenId).min(1)).min(1),
  ]),
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).nullish(),
  // llama-server's: -1 raw, 0 max-abs scaled to int16, 1 taxicab, 2 Euclidean (the default), p > 2 the p-norm.
  embd_normalize: z.number().int().min(-1).max(64).nullish(),
  // vLLM's: false returns the raw vectors.
  normalize: z.boolean().nullish(),
  user: z.string().nullish(),
});
export type EmbeddingRequest = z.infer<typeof EmbeddingRequestSchema>;

export const TokenizeRequestSchema = z
  .object({
    model: z.string().nullish(),
    prompt: z.string().optional(),
    content: z.string().optional(),
    add_special: z.boolean().nullish(),
    add_special_tokens: z.boolean().nullish(),
  })
  .refine((body) => body.prompt !== undefined || body.content !== undefined, {
    message: "either prompt or content is required",
    path: ["prompt"],
  });
export type TokenizeRequest = z.infer<typeof TokenizeRequestSchema>;

export const DetokenizeRequestSchema = z.object({
  model: z.string().nullish(),
  tokens: z.array(tokenId),
});
export type DetokenizeRequest = z.infer<typeof DetokenizeRequestSchema>;
