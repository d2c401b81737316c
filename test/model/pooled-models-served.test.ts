/**
 * One process for a RAG stack: stories260K generates while the project's synthetic tiny-bert (`--embedding-model`)
 * embeds and tiny-bert-reranker (`--rerank-model`) reranks, over real HTTP and the `openai` client. Each pooled
 * model answers exactly as the same file served alone as the model (flash attention off on both sides: on CPU it
 * makes pooled outputs depend on the batch). Random weights: the values mean nothing, their equality does.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { synth, withTempDir } from "../helpers/gguf-files.ts";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";

const QUERY = "what does the little dog like";
const DOCUMENTS = [
  "the little dog likes to play with a red ball",
  "once upon a time there was a big tree",
  "the cat sat on the mat and slept all day",
  "a dog and a ball in the park",
];

let dir = "";
let release: () => void = () => {};
const servers: ModelServer[] = [];
let stack: ModelServer;
let embedderAlone: ModelServer;
let rerankerAlone: ModelServer;

before(async () => {
  await new Promise<void>((ready) => {
    void withTempDir("pooled-served", async (tempDir) => {
      dir = tempDir;
      ready();
      await new Promise<void>((done) => {
        release = done;
      });
    });
  });
  for (const shape of ["tiny-bert", "tiny-bert-reranker"]) {
    const result = await synth("--like", shape, "--type", "f32", "--out", path.join(dir, `${shape}.gguf`));
    assert.equal(result.code, 0, result.stderr);
  }
  const common = ["--flash-attn", "off", "--ctx-size", "512", "--parallel", "2"];
  stack = await startModelServer([
    ...common,
    "--embedding-model",
    file("tiny-bert"),
    "--rerank-model",
    file("tiny-bert-reranker"),
  ]);
  embedderAlone = await startModelServer([...common, "--model", file("tiny-bert")]);
  rerankerAlone = await startModelServer([...common, "--model", file("tiny-bert-reranker")]);
  servers.push(stack, embedderAlone, rerankerAlone);
});
after(async () => {
  for (const server of servers) await server.close();
  release();
});

function file(shape: string): string {
  return path.join(dir, `${shape}.gguf`);
}

async function post(server: ModelServer, url: string, body: unknown) {
  const response = await fetch(`${server.baseUrl}${url}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function largestDifference(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((value, index) => Math.abs(value - (b[index] ?? Number.NaN))));
}

test("/v1/models lists the generator and both pooled models", async () => {
  const models = await stack.client.models.list();
  assert.deepEqual(
    models.data.map((model) => model.id),
    [STORIES_ID, "tiny-bert", "tiny-bert-reranker"],
  );
});

test("the embedding model embeds through the openai client as it does served alone", async () => {
  const beside = await stack.client.embeddings.create({ model: "tiny-bert", input: DOCUMENTS });
  const alone = await embedderAlone.client.embeddings.create({ model: "tiny-bert", input: DOCUMENTS });
  assert.equal(beside.model, "tiny-bert");
  assert.equal(beside.usage.prompt_tokens, alone.usage.prompt_tokens);
  for (const [index, item] of beside.data.entries()) {
    assert.equal(item.embedding.length, 128);
    assert.ok(Math.abs(Math.hypot(...item.embedding) - 1) < 1e-6);
    const difference = largestDifference(item.embedding, alone.data[index]?.embedding ?? []);
    assert.ok(difference < 1e-5, `input ${index}: largest difference ${difference}`);
  }
  // As llama.cpp's server tokenizes an embedding input for a WordPiece vocabulary: [CLS] text [SEP].
  const embedder = stack.runtime.pooledModels?.find((served) => served.modelId === "tiny-bert")?.engine;
  assert.ok(embedder !== undefined);
  const one = await stack.client.embeddings.create({ model: "tiny-bert", input: DOCUMENTS[0] ?? "" });
  const words = embedder.tokenize(DOCUMENTS[0] ?? "");
  assert.equal(one.usage.prompt_tokens, words.length + 2);
  const input = embedder.tokenizeWithSpecials(DOCUMENTS[0] ?? "");
  assert.deepEqual(input.slice(1, -1), words);
  assert.notEqual(input.at(0), input.at(-1), "opened by CLS, closed by SEP");
  // Matryoshka truncation through the client: the first 32 values, normalised after.
  const short = await stack.client.embeddings.create({ model: "tiny-bert", input: DOCUMENTS[0] ?? "", dimensions: 32 });
  const shortVector = short.data[0]?.embedding ?? [];
  assert.equal(shortVector.length, 32);
  assert.ok(Math.abs(Math.hypot(...shortVector) - 1) < 1e-6);
  // The generator still embeds when named.
  const own = await stack.client.embeddings.create({ model: STORIES_ID, input: "hello" });
  assert.equal(own.data[0]?.embedding.length, stack.runtime.engine.info.embeddingSize);
});

test("the reranker scores as it does served alone, named or not", async () => {
  const alone = await post(rerankerAlone, "/v1/rerank", {
    query: QUERY,
    documents: DOCUMENTS,
    return_documents: false,
  });
  assert.equal(alone.status, 200, JSON.stringify(alone.body));
  for (const model of ["tiny-bert-reranker", undefined]) {
    const beside = await post(stack, "/v1/rerank", {
      model,
      query: QUERY,
      documents: DOCUMENTS,
      return_documents: false,
    });
    assert.equal(beside.status, 200, JSON.stringify(beside.body));
    assert.equal(beside.body.model, "tiny-bert-reranker");
    const scores = (body: Record<string, unknown>) =>
      (body.results as { index: number; relevance_score: number }[])
        .sort((a, b) => a.index - b.index)
        .map((result) => result.relevance_score);
    const difference = largestDifference(scores(beside.body), scores(alone.body));
    assert.ok(difference < 1e-5, `largest difference ${difference}`);
  }
});

test("generation streams run to their end while embeddings and reranks run in the same process", async () => {
  const streams = Array.from({ length: 2 }, () =>
    stack.client.completions.create({
      model: STORIES_ID,
      prompt: "Once upon a time",
      max_tokens: 120,
      temperature: 0,
      stream: true,
    }),
  );
  const pooled = Array.from({ length: 4 }, (_, index) =>
    index % 2 === 0
      ? post(stack, "/v1/embeddings", { model: "tiny-bert", input: DOCUMENTS })
      : post(stack, "/v1/rerank", { query: QUERY, documents: DOCUMENTS }),
  );
  for (const stream of await Promise.all(streams)) {
    let finishReason: string | null = null;
    let numChunks = 0;
    for await (const chunk of stream) {
      numChunks++;
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
    }
    assert.ok(numChunks > 1);
    assert.ok(finishReason === "length" || finishReason === "stop");
  }
  for (const result of await Promise.all(pooled)) assert.equal(result.status, 200, JSON.stringify(result.body));
});

/** The start-up's error; a server that starts after all is closed, so the failure cannot leave it listening. */
async function startupError(flags: string[]): Promise<string> {
  let server: ModelServer;
  try {
    server = await startModelServer(flags);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  await server.close();
  return assert.fail(`the server started with ${flags.join(" ")}`);
}

test("a pooled model that cannot serve its role fails the start-up, naming the file", async () => {
  assert.match(
    await startupError(["--rerank-model", file("tiny-bert")]),
    /^--rerank-model .*tiny-bert\.gguf: could not load it as a reranker: it has no classification head/,
  );
  assert.match(
    await startupError(["--embedding-model", file("tiny-bert-reranker")]),
    /its pooling is rank \(a reranker\); pass it as --rerank-model/,
  );
  assert.match(
    await startupError(["--embedding-model", `${STORIES_ID}=${file("tiny-bert")}`]),
    /the id stories260K is already served/,
  );
});

test("/tokenize and /detokenize serve every model's tokenizer, with llama.cpp's add_special", async () => {
  const text = DOCUMENTS[0] ?? "";
  const tokenize = (body: Record<string, unknown>) => post(stack, "/tokenize", body);
  const special = await tokenize({ model: "tiny-bert", prompt: text });
  assert.equal(special.status, 200, JSON.stringify(special.body));
  const plain = await tokenize({ model: "tiny-bert", prompt: text, add_special_tokens: false });
  const withSpecials = special.body.tokens as number[];
  assert.deepEqual(withSpecials.slice(1, -1), plain.body.tokens, "[CLS] and [SEP] around the words");
  const embedded = await stack.client.embeddings.create({ model: "tiny-bert", input: text });
  assert.equal(embedded.usage.prompt_tokens, withSpecials.length, "as /v1/embeddings counts them");
  const generator = await tokenize({ prompt: text });
  assert.notDeepEqual(generator.body.tokens, withSpecials, "without model, the generator's tokenizer");
  const back = await post(stack, "/detokenize", { model: "tiny-bert", tokens: plain.body.tokens });
  assert.equal(back.status, 200, JSON.stringify(back.body));
  assert.equal(typeof back.body.prompt, "string");
});
