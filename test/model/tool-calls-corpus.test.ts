/**
 * A sample of JSONSchemaBench's Glaiveai2K split (real function-calling schemas) as tool parameters, through the
 * real model (stories260K, whose template has no tool syntax, so the generic call format is forced) and a real
 * socket: every schema is refused with a 400 naming what pagoda cannot enforce, or the call's arguments parse and
 * validate with ajv. The whole split runs in `npm run bench:schema-generation -- --as-tool --split Glaiveai2K`.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { generateForSchemas } from "../helpers/corpus-generation.ts";
import { type ModelServer, startModelServer } from "../helpers/model-server.ts";

const CORPUS = path.resolve(import.meta.dirname, "../../../shared/schemas/jsonschemabench/Glaiveai2K");
/** Every 25th schema in file name order: about 70. */
const STRIDE = 25;
const SKIP = existsSync(CORPUS) ? false : `Glaiveai2K corpus not found at ${CORPUS}`;

let server: ModelServer;

before(async () => {
  if (SKIP === false) server = await startModelServer(["--parallel", "8", "--ctx-size", "2048"]);
});

after(async () => {
  await server?.close();
});

test("every 25th Glaiveai2K schema as a tool is refused naming why, or called with arguments that validate", {
  skip: SKIP,
}, async () => {
  const files = readdirSync(CORPUS)
    .filter((file) => file.endsWith(".json"))
    .sort()
    .filter((_, index) => index % STRIDE === 0)
    .map((file) => path.join(CORPUS, file));
  const tally = await generateForSchemas(files, {
    baseUrl: server.baseUrl,
    maxTokens: 768,
    concurrency: 8,
    asTool: true,
  });
  assert.deepEqual(tally.failures, []);
  assert.deepEqual(tally.invalid, []);
  assert.ok(tally.numValid > files.length / 2, JSON.stringify(tally));
  assert.equal((await fetch(`${server.baseUrl}/health`)).status, 200);
});
