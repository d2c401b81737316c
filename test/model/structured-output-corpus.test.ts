/**
 * A sample of JSONSchemaBench through the real model (stories260K) and a real socket: every schema is refused with
 * a 400 naming what pagoda cannot enforce, or the finished output parses and validates with ajv. The whole corpus
 * runs in `npm run bench:schema-generation`.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { generateForSchemas } from "../helpers/corpus-generation.ts";
import { type ModelServer, startModelServer } from "../helpers/model-server.ts";

const CORPUS = path.resolve(import.meta.dirname, "../../../shared/schemas/jsonschemabench");
const SPLITS = ["Glaiveai2K", "Github_trivial", "Github_easy", "Github_medium"];
/** Every 40th schema of each split, in file name order: about 150 in all. */
const STRIDE = 40;
const SKIP = existsSync(CORPUS) ? false : `JSONSchemaBench corpus not found at ${CORPUS}`;

let server: ModelServer;

before(async () => {
  if (SKIP === false) server = await startModelServer(["--parallel", "8", "--ctx-size", "1024"]);
});

after(async () => {
  await server?.close();
});

for (const split of SPLITS) {
  test(`every 40th ${split} schema is refused naming why, or generated output that validates`, {
    skip: SKIP,
  }, async () => {
    const dir = path.join(CORPUS, split);
    const files = readdirSync(dir)
      .filter((file) => file.endsWith(".json"))
      .sort()
      .filter((_, index) => index % STRIDE === 0)
      .map((file) => path.join(dir, file));
    const tally = await generateForSchemas(files, { baseUrl: server.baseUrl, maxTokens: 768, concurrency: 8 });
    assert.deepEqual(tally.failures, []);
    assert.deepEqual(tally.invalid, []);
    assert.ok(tally.numValid > 0, JSON.stringify(tally));
    assert.equal((await fetch(`${server.baseUrl}/health`)).status, 200);
  });
}
