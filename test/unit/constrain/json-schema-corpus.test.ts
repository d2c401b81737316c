import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { checkSchema } from "../../helpers/schema-soundness.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const corpusDir = path.resolve(repoRoot, "../shared/schemas/jsonschemabench");
const SPLITS = ["Glaiveai2K", "Github_trivial", "Github_easy", "Github_medium"];
/** Every 20th schema of each split, in file name order: a deterministic sample of about 300. */
const STRIDE = 20;
const SKIP = existsSync(corpusDir) ? false : `JSONSchemaBench corpus not found at ${corpusDir}`;

for (const split of SPLITS) {
  test(`every 20th ${split} schema converts or is refused with a SchemaError, and every sample validates`, {
    skip: SKIP,
  }, () => {
    const dir = path.join(corpusDir, split);
    const files = readdirSync(dir)
      .filter((file) => file.endsWith(".json"))
      .sort()
      .filter((_, i) => i % STRIDE === 0);
    const crashes: string[] = [];
    const invalid: string[] = [];
    let numConverted = 0;
    for (const file of files) {
      const check = checkSchema(JSON.parse(readFileSync(path.join(dir, file), "utf8")), { samples: 3, seed: 7 });
      if (check.outcome === "crashed") crashes.push(`${file}: ${String(check.error)}`);
      if (check.outcome !== "converted") continue;
      numConverted++;
      for (const bad of check.invalid) invalid.push(`${file}: ${bad.sample} (${bad.reason})`);
    }
    assert.deepEqual(crashes, []);
    assert.deepEqual(invalid, []);
    assert.ok(numConverted >= files.length * 0.75, `only ${numConverted} of ${files.length} converted`);
  });
}
