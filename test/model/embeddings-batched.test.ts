/**
 * Embeddings on stories260K through a real socket and the `openai` client: unit vectors by default, the same for an
 * input embedded alone or among 31 others sharing its decode (batching must not change a vector beyond rounding), raw
 * vectors on request, and a disconnect that leaves the server serving.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type ModelServer, STORIES_ID, startModelServer } from "../helpers/model-server.ts";

let server: ModelServer;

before(async () => {
  // Flash attention's CPU kernels sum in an order that depends on the batch (a component moved by 1.4e-5 between
  // alone and batched); without it, batching must not change a vector beyond rounding.
  server = await startModelServer([
    "--parallel",
    "2",
    "--ctx-size",
    "512",
    "--embedding-parallel",
    "32",
    "--flash-attn",
    "off",
  ]);
});

after(async () => {
  await server.close();
});

const INPUTS = Array.from(
  { length: 32 },
  (_, i) => `Once upon a time a ${["cat", "dog", "bird", "frog"][i % 4]} saw ${i} stars`,
);

function norm(vector: readonly number[]): number {
  return Math.hypot(...vector);
}

test("vectors are unit length, as floats and as base64", async () => {
  const floats = await server.client.embeddings.create({
    model: STORIES_ID,
    input: INPUTS.slice(0, 4),
    encoding_format: "float",
  });
  for (const item of floats.data) assert.ok(Math.abs(norm(item.embedding) - 1) < 1e-6, String(norm(item.embedding)));
  // The SDK asks for base64 by default and decodes it to float32.
  const decoded = await server.client.embeddings.create({ model: STORIES_ID, input: INPUTS.slice(0, 4) });
  decoded.data.forEach((item, index) => {
    assert.ok(Math.abs(norm(item.embedding) - 1) < 1e-6);
    const floatsOf = floats.data[index]?.embedding ?? [];
    assert.deepEqual(
      item.embedding,
      floatsOf.map((value) => Math.fround(value)),
    );
  });
});

test("an input embedded alone equals the same input among 31 others, up to rounding", async () => {
  const alone = await Promise.all(
    INPUTS.map(
      async (input) =>
        (await server.client.embeddings.create({ model: STORIES_ID, input, encoding_format: "float" })).data[0]
          ?.embedding ?? [],
    ),
  );
  // One request of 32 inputs, and 32 concurrent one-input requests: both share decodes.
  const together = await server.client.embeddings.create({
    model: STORIES_ID,
    input: INPUTS,
    encoding_format: "float",
  });
  const concurrent = await Promise.all(
    INPUTS.map((input) => server.client.embeddings.create({ model: STORIES_ID, input, encoding_format: "float" })),
  );
  let maxDifference = 0;
  INPUTS.forEach((_, index) => {
    for (const other of [together.data[index]?.embedding ?? [], concurrent[index]?.data[0]?.embedding ?? []]) {
      assert.equal(other.length, alone[index]?.length);
      other.forEach((value, dim) => {
        maxDifference = Math.max(maxDifference, Math.abs(value - (alone[index]?.[dim] ?? Number.NaN)));
      });
    }
  });
  assert.ok(maxDifference < 1e-5, `largest difference ${maxDifference}`);
  assert.equal(
    together.usage.prompt_tokens,
    INPUTS.reduce((sum, input) => sum + server.runtime.engine.tokenize(input, { addBos: true }).length, 0),
  );
});

test("embd_normalize -1 returns the model's raw vector", async () => {
  const response = await fetch(`${server.baseUrl}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: STORIES_ID, input: INPUTS[0], embd_normalize: -1 }),
  });
  const body = (await response.json()) as { data: { embedding: number[] }[] };
  assert.ok(norm(body.data[0]?.embedding ?? []) > 1.5);
});

test("a client that goes away mid-request leaves the server serving", async () => {
  const controller = new AbortController();
  const pending = fetch(`${server.baseUrl}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: STORIES_ID,
      input: Array.from({ length: 256 }, (_, i) => `${INPUTS[i % 32]} again`),
    }),
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(), 5);
  await assert.rejects(pending);
  const after = await server.client.embeddings.create({
    model: STORIES_ID,
    input: INPUTS[1] ?? "",
    encoding_format: "float",
  });
  assert.ok(Math.abs(norm(after.data[0]?.embedding ?? []) - 1) < 1e-6);
});
