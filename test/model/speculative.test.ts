/**
 * Speculation on the real model. N-gram: stories260K repeats itself a lot, so prompt lookup finds drafts; the model
 * verifies them in its normal step. Greedy output matches the server without speculation (up to a near-tie, see
 * greedy-compare.ts), drafts are accepted, and the spec-decode metrics count them. Draft model: with the target's
 * own weights as the draft, every draft must be accepted, greedy or sampled — an exact check of the verifier.
 */

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeSyntheticLlama } from "../../src/gguf/synthetic-model.ts";
import { compareGreedyText, type GreedyRun, greedyCompletion } from "../helpers/greedy-compare.ts";
import { type ModelServer, STORIES_ID, STORIES_MODEL, startModelServer } from "../helpers/model-server.ts";

let speculative: ModelServer;
let plain: ModelServer;

before(async () => {
  // A fixed draft length: the adaptive one rightly stops drafting on a model this cheap, and this tests the mechanics.
  speculative = await startModelServer([
    "--parallel",
    "4",
    "--ctx-size",
    "512",
    "--spec-mode",
    "ngram",
    "--draft-max",
    "4",
    "--spec-adaptive",
    "false",
  ]);
  plain = await startModelServer(["--parallel", "4", "--ctx-size", "512"]);
});

after(async () => {
  await speculative?.close();
  await plain?.close();
});

async function greedy(server: ModelServer, prompt: string): Promise<GreedyRun> {
  const run = await greedyCompletion(server, prompt, 160);
  assert.equal(run.numCompletionTokens, 160, "usage counts every token, drafted or not");
  return run;
}

async function greedyNoLogprobs(server: ModelServer, prompt: string): Promise<string> {
  const completion = await server.client.completions.create({
    model: STORIES_ID,
    prompt,
    max_tokens: 160,
    temperature: 0,
    ignore_eos: true,
  } as Parameters<typeof server.client.completions.create>[0] & { stream?: false });
  return completion.choices[0]?.text ?? "";
}

test("greedy output with n-gram speculation matches the model without it, with drafts accepted", async () => {
  const prompts = ["Once upon a time", "The little dog", "Tom had a red ball", "There was a tiny frog"];
  // Logprobs requests are never speculated: they give the reference and its near-ties.
  const references = await Promise.all(prompts.map((prompt) => greedy(plain, prompt)));
  const texts = await Promise.all(prompts.map((prompt) => greedyNoLogprobs(speculative, prompt)));
  const outcomes = texts.map((text, index) => compareGreedyText(text, references[index]!, prompts[index]!));
  assert.ok(
    outcomes.filter((outcome) => outcome === "identical").length >= prompts.length - 1,
    `outcomes: ${outcomes.join(", ")}`,
  );

  const spec = speculative.runtime.loop.specStats();
  assert.ok(spec !== null);
  assert.ok(spec.numAcceptedTokens > 50, `${spec.numAcceptedTokens} of ${spec.numDraftTokens} drafts accepted`);
  const metrics = await (await fetch(`${speculative.baseUrl}/metrics`)).text();
  const accepted = Number(/^vllm:spec_decode_num_accepted_tokens_total\{[^}]*\} (\d+)/m.exec(metrics)?.[1]);
  assert.equal(accepted, spec.numAcceptedTokens);
  assert.match(metrics, /vllm:spec_decode_num_accepted_tokens_per_pos_total\{[^}]*position="0"[^}]*\} [1-9]/);
});

test("a seeded sampled request under speculation is reproducible", async () => {
  const request = { model: STORIES_ID, prompt: "Lily and Ben", max_tokens: 64, temperature: 0.9, seed: 7 };
  const first = await speculative.client.completions.create(request);
  const second = await speculative.client.completions.create(request);
  assert.equal(first.choices[0]?.text, second.choices[0]?.text);
  assert.equal(first.usage?.completion_tokens, 64);
});

test("a draft model with the target's weights has every draft accepted, greedy and sampled (q = p)", async () => {
  const twin = await startModelServer([
    "--parallel",
    "4",
    "--ctx-size",
    "512",
    "--spec-mode",
    "draft",
    "--draft-model",
    STORIES_MODEL,
    "--draft-max",
    "3",
    "--spec-adaptive",
    "false",
  ]);
  try {
    // Drafting with the target itself never pays, so the adaptive length would choose 0: it is fixed at 3 here.
    const prompts = ["Once upon a time", "The little dog", "Tom had a red ball"];
    const references = await Promise.all(prompts.map((prompt) => greedy(plain, prompt)));
    const texts = await Promise.all(prompts.map((prompt) => greedyNoLogprobs(twin, prompt)));
    for (const [index, text] of texts.entries()) compareGreedyText(text, references[index]!, prompts[index]!);
    const greedyStats = twin.runtime.loop.specStats();
    assert.ok(greedyStats !== null && greedyStats.numDraftTokens > 100);
    assert.equal(
      greedyStats.numAcceptedTokens,
      greedyStats.numDraftTokens,
      "identical models agree on every greedy token",
    );
    // Sampled: drafts drawn from q = p are accepted with probability min(1, p/q) = 1.
    await Promise.all(
      prompts.map((prompt, index) =>
        twin.client.completions.create({ model: STORIES_ID, prompt, max_tokens: 64, temperature: 0.9, seed: index }),
      ),
    );
    const sampledStats = twin.runtime.loop.specStats();
    assert.ok(sampledStats !== null && sampledStats.numDraftTokens > greedyStats.numDraftTokens);
    assert.equal(sampledStats.numAcceptedTokens, sampledStats.numDraftTokens, "q = p accepts every sampled draft");
  } finally {
    await twin.close();
  }
});

test("--draft-model alone turns speculation on, and a draft whose tokenizer differs stops the start-up naming the difference", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pagoda-draft-"));
  try {
    const other = join(dir, "other-vocab.gguf");
    await writeSyntheticLlama(other, { vocabSize: 1024, embeddingLength: 64, blockCount: 1, feedForwardLength: 128 });
    await assert.rejects(
      startModelServer(["--draft-model", other]),
      /--draft-model .*other-vocab\.gguf: its tokenizer differs from the target's \(vocabulary 1024 vs 512 tokens\)/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
