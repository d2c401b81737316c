/**
 * Black-box tests: a listening pagoda serving the real stories260K model, driven by the official `openai` client,
 * with every response checked against OpenAI's own OpenAPI schemas.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";

let server: ModelServer;

before(async () => {
  server = await startModelServer(["--parallel", "4", "--ctx-size", "512"]);
});

after(async () => {
  await server.close();
});

const PROMPT = "Once upon a time";

test("a greedy completion continues the story and reports exact usage", async () => {
  const completion = await server.client.completions.create({
    model: STORIES_ID,
    prompt: PROMPT,
    max_tokens: 24,
    temperature: 0,
  });
  assertMatchesSchema("CreateCompletionResponse", completion);
  const choice = completion.choices[0];
  assert.ok(choice !== undefined);
  assert.match(choice.text, /^, there was a little/, "stories260K's well-known greedy continuation");
  assert.equal(choice.finish_reason, "length");
  const tokenized = (await (
    await fetch(`${server.baseUrl}/tokenize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: PROMPT }),
    })
  ).json()) as { count: number };
  assert.deepEqual(completion.usage, {
    prompt_tokens: tokenized.count,
    completion_tokens: 24,
    total_tokens: tokenized.count + 24,
    prompt_tokens_details: { cached_tokens: 0 },
  });
});

test("streamed text equals non-streamed text at temperature 0, for completions and chat", async () => {
  const plain = await server.client.completions.create({
    model: STORIES_ID,
    prompt: PROMPT,
    max_tokens: 40,
    temperature: 0,
  });
  const stream = await server.client.completions.create({
    model: STORIES_ID,
    prompt: PROMPT,
    max_tokens: 40,
    temperature: 0,
    stream: true,
  });
  let streamed = "";
  let finishReason: string | null = null;
  for await (const chunk of stream) {
    streamed += chunk.choices[0]?.text ?? "";
    finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
  }
  assert.equal(streamed, plain.choices[0]?.text);
  assert.equal(finishReason, "length");

  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Tell me a story about a cat." }];
  const chat = await server.client.chat.completions.create({
    model: STORIES_ID,
    messages,
    max_tokens: 40,
    temperature: 0,
  });
  assertMatchesSchema("CreateChatCompletionResponse", chat);
  const chatStream = await server.client.chat.completions.create({
    model: STORIES_ID,
    messages,
    max_tokens: 40,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let chatText = "";
  let usage: OpenAI.CompletionUsage | null | undefined = null;
  let firstRole: string | undefined;
  for await (const chunk of chatStream) {
    assertMatchesSchema("CreateChatCompletionStreamResponse", chunk);
    firstRole ??= chunk.choices[0]?.delta.role;
    chatText += chunk.choices[0]?.delta.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assert.equal(firstRole, "assistant");
  assert.equal(chatText, chat.choices[0]?.message.content);
  // The streamed request repeats the prompt: its full blocks come from the prefix cache, the rest is equal.
  assert.deepEqual(usage, { ...chat.usage, prompt_tokens_details: { cached_tokens: 32 } });
  assert.equal(chat.usage?.prompt_tokens_details?.cached_tokens, 0);
});

test("a stop string ends the text right before it", async () => {
  const plain = await server.client.completions.create({
    model: STORIES_ID,
    prompt: PROMPT,
    max_tokens: 40,
    temperature: 0,
  });
  const text = plain.choices[0]?.text ?? "";
  const stop = " named";
  assert.ok(text.includes(stop), `greedy text should contain ${JSON.stringify(stop)}: ${text}`);
  for (const stream of [false, true]) {
    const request = { model: STORIES_ID, prompt: PROMPT, max_tokens: 40, temperature: 0, stop: [stop, "zzz"] };
    let result = "";
    let finishReason: string | null | undefined;
    if (stream) {
      for await (const chunk of await server.client.completions.create({ ...request, stream: true })) {
        result += chunk.choices[0]?.text ?? "";
        finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
      }
    } else {
      const completion = await server.client.completions.create(request);
      result = completion.choices[0]?.text ?? "";
      finishReason = completion.choices[0]?.finish_reason;
    }
    assert.equal(result, text.slice(0, text.indexOf(stop)), `stream: ${stream}`);
    assert.equal(finishReason, "stop");
  }
});

test("equal seeds reproduce a sampled completion and different seeds differ", async () => {
  const sample = async (seed: number): Promise<string> =>
    (
      await server.client.completions.create({
        model: STORIES_ID,
        prompt: PROMPT,
        max_tokens: 32,
        temperature: 1,
        seed,
      })
    ).choices[0]?.text ?? "";
  const first = await sample(1234);
  assert.equal(await sample(1234), first);
  const others = await Promise.all([1, 2, 3, 4].map((seed) => sample(seed)));
  assert.ok(new Set([first, ...others]).size >= 4, `sampled outputs should differ: ${JSON.stringify(others)}`);
});

test("n: 2 returns two differently sampled choices with one prompt's usage", async () => {
  const completion = await server.client.completions.create({
    model: STORIES_ID,
    prompt: PROMPT,
    max_tokens: 24,
    temperature: 1,
    seed: 7,
    n: 2,
  });
  assertMatchesSchema("CreateCompletionResponse", completion);
  assert.deepEqual(
    completion.choices.map((choice) => choice.index),
    [0, 1],
  );
  assert.notEqual(completion.choices[0]?.text, completion.choices[1]?.text);
  assert.equal(completion.usage?.completion_tokens, 48);
  const chat = await server.client.chat.completions.create({
    model: STORIES_ID,
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 16,
    temperature: 1,
    seed: 7,
    n: 2,
  });
  assertMatchesSchema("CreateChatCompletionResponse", chat);
  assert.equal(chat.choices.length, 2);
});

test("embeddings decode identically from float and from base64, the client's default", async () => {
  const input = ["Once upon a time", "The cat sat on the mat."];
  const floats = await server.client.embeddings.create({ model: STORIES_ID, input, encoding_format: "float" });
  assertMatchesSchema("CreateEmbeddingResponse", floats);
  const viaBase64 = await server.client.embeddings.create({ model: STORIES_ID, input });
  assert.equal(floats.data.length, 2);
  floats.data.forEach((item, index) => {
    const decoded = viaBase64.data[index]?.embedding ?? [];
    assert.equal(item.embedding.length, 64);
    assert.equal(decoded.length, 64);
    for (const [dimension, value] of item.embedding.entries()) assert.equal(Math.fround(value), decoded[dimension]);
  });
  assert.ok(floats.usage.prompt_tokens > 2);
  assert.notDeepEqual(floats.data[0]?.embedding, floats.data[1]?.embedding);
});

test("errors reach the client as typed OpenAI errors", async () => {
  await assert.rejects(
    server.client.completions.create({ model: "no-such-model", prompt: PROMPT }),
    (error: unknown) => error instanceof OpenAI.NotFoundError && error.code === "model_not_found",
  );
  await assert.rejects(
    server.client.completions.create({ model: STORIES_ID, prompt: PROMPT, temperature: 5 }),
    (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === "temperature",
  );
  await assert.rejects(
    server.client.completions.create({ model: STORIES_ID, prompt: PROMPT, max_tokens: 4096 }),
    (error: unknown) => error instanceof OpenAI.BadRequestError && error.code === "context_length_exceeded",
  );
});

test("a client that disconnects mid-stream frees its sequence at the next step", async () => {
  const engine = server.runtime.engine;
  const numSequences = engine.info.numSequences;
  const maxTokens = 480;
  const controller = new AbortController();
  const stream = await server.client.completions.create(
    {
      model: STORIES_ID,
      prompt: PROMPT,
      max_tokens: maxTokens,
      temperature: 0,
      ignore_eos: true,
      stream: true,
    } as OpenAI.CompletionCreateParamsStreaming,
    { signal: controller.signal },
  );
  let numChunks = 0;
  for await (const chunk of stream) {
    void chunk;
    numChunks += 1;
    if (numChunks === 3) {
      controller.abort();
      break;
    }
  }
  const stats = await server.waitForFinished((candidate) => candidate.maxTokens === maxTokens);
  assert.equal(stats.finishReason, "abort", "the request was aborted, not run to max_tokens");
  assert.ok(stats.numOutputTokens < maxTokens / 4, `stopped after ${stats.numOutputTokens} of ${maxTokens} tokens`);
  assert.equal(engine.numFreeSequences(), numSequences, "no sequence is active");
  assert.equal(server.runtime.loop.kvCacheState().numUsedBlocks, 0, "its KV blocks returned to the pool");
  assert.equal(server.runtime.loop.numRunning, 0);
  const after = await server.client.completions.create({
    model: STORIES_ID,
    prompt: PROMPT,
    max_tokens: 4,
    temperature: 0,
  });
  assert.equal(after.choices[0]?.finish_reason, "length");
});

test("the first generated token keeps its leading space in text, echo and logprobs", async () => {
  const prompt = "Once upon a";
  const echoed = await server.client.completions.create({
    model: STORIES_ID,
    prompt,
    max_tokens: 8,
    temperature: 0,
    echo: true,
  });
  assert.match(echoed.choices[0]?.text ?? "", /^Once upon a time,/);
  const withLogprobs = await server.client.completions.create({
    model: STORIES_ID,
    prompt,
    max_tokens: 8,
    temperature: 0,
    logprobs: 2,
  });
  const choice = withLogprobs.choices[0];
  assert.ok(choice?.logprobs?.tokens !== undefined);
  assert.equal(choice.logprobs.tokens[0], " time");
  assert.equal(choice.logprobs.tokens.join(""), choice.text, "token texts concatenate to the text");
  assert.deepEqual(
    choice.logprobs.text_offset,
    choice.logprobs.tokens.map((_, index) => choice.logprobs?.tokens?.slice(0, index).join("").length),
  );
  const stopped = await server.client.completions.create({
    model: STORIES_ID,
    prompt,
    max_tokens: 8,
    temperature: 0,
    stop: [" time"],
  });
  assert.equal(stopped.choices[0]?.text, "", "a stop string at the very start of the output matches");
  assert.equal(stopped.choices[0]?.finish_reason, "stop");
});
