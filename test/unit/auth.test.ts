import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ConfigError } from "../../src/config/config-error.ts";
import { loadConfig } from "../../src/config/load-config.ts";
import { appDepsFromConfig } from "../../src/main.ts";
import { ApiKeyVerifier, resolveApiKeys } from "../../src/server/auth.ts";
import { PagodaError } from "../../src/server/errors.ts";

const dir = mkdtempSync(path.join(tmpdir(), "pagoda-auth-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test("a verifier matches each configured key to its own stable id that does not reveal the key", () => {
  const verifier = new ApiKeyVerifier(["alpha", "beta", "alpha"]);
  const alpha = verifier.match("alpha");
  const beta = verifier.match("beta");
  assert.ok(alpha !== null && beta !== null);
  assert.notEqual(alpha, beta);
  assert.equal(new ApiKeyVerifier(["beta"]).match("beta"), beta, "the id depends on the key only");
  assert.match(alpha, /^key-[0-9a-f]{12}$/);
  for (const other of ["", "alph", "alphaa", "Alpha", "beta "])
    assert.equal(verifier.match(other), null, JSON.stringify(other));
});

test("authenticate tells a missing bearer token from a wrong one", () => {
  const verifier = new ApiKeyVerifier(["alpha"]);
  assert.equal(verifier.authenticate("Bearer alpha"), verifier.match("alpha"));
  assert.equal(verifier.authenticate("  BEARER   alpha  "), verifier.match("alpha"));
  const codeOf = (header: string | undefined): string => {
    try {
      verifier.authenticate(header);
    } catch (error) {
      assert.ok(error instanceof PagodaError);
      assert.equal(error.statusCode, 401);
      return error.code;
    }
    return "accepted";
  };
  assert.equal(codeOf(undefined), "PAGODA_ERR_MISSING_API_KEY");
  assert.equal(codeOf("Token alpha"), "PAGODA_ERR_MISSING_API_KEY");
  assert.equal(codeOf("Bearer "), "PAGODA_ERR_MISSING_API_KEY");
  assert.equal(codeOf("Bearer beta"), "PAGODA_ERR_INVALID_API_KEY");
});

test("a verifier without keys is disabled", () => {
  assert.equal(new ApiKeyVerifier([]).isEnabled, false);
  assert.equal(new ApiKeyVerifier(["k"]).isEnabled, true);
});

test("the key file adds one key per line, skipping blank lines and comments", () => {
  const file = path.join(dir, "keys.txt");
  writeFileSync(file, "# production keys\nsk-one\r\n\n  sk-two  \n#sk-disabled\n");
  assert.deepEqual(resolveApiKeys(["sk-flag"], file), ["sk-flag", "sk-one", "sk-two"]);
  assert.deepEqual(resolveApiKeys(["sk-flag"], undefined), ["sk-flag"]);
});

test("an unreadable key file or one without keys stops the server instead of leaving it open", () => {
  const empty = path.join(dir, "empty.txt");
  writeFileSync(empty, "# nothing yet\n\n");
  assert.throws(
    () => resolveApiKeys([], empty),
    (error: unknown) => error instanceof ConfigError && /holds no key/.test(error.message),
  );
  assert.throws(
    () => resolveApiKeys([], path.join(dir, "missing.txt")),
    (error: unknown) =>
      error instanceof ConfigError && /--api-key-file: .*missing\.txt cannot be read \(ENOENT\)/.test(error.message),
  );
});

test("the app options carry every hardening setting from the configuration, in milliseconds", () => {
  const config = loadConfig({
    argv: [
      "--rate-limit",
      "5",
      "--rate-limit-window",
      "2",
      "--request-timeout",
      "7",
      "--shutdown-grace",
      "3",
      "--max-n",
      "4",
      "--cors-origin",
      "*",
    ],
    env: {},
    cwd: dir,
  });
  const deps = appDepsFromConfig(config, ["k"]);
  assert.deepEqual(deps.rateLimit, { maxRequests: 5, windowMs: 2000 });
  assert.equal(deps.requestTimeoutMs, 7000);
  assert.equal(deps.shutdownGraceMs, 3000);
  assert.equal(deps.keepAliveTimeoutMs, 72_000);
  assert.equal(deps.bodyLimitBytes, 8 * 1024 * 1024);
  assert.deepEqual(deps.limits, { maxTokens: 0, maxN: 4, maxStopStrings: 4, maxStopLength: 256, maxPromptTokens: 0 });
  assert.deepEqual(deps.corsOrigins, ["*"]);
  assert.deepEqual(deps.apiKeys, ["k"]);
  assert.equal(appDepsFromConfig(loadConfig({ argv: [], env: {}, cwd: dir }), []).rateLimit, null);
});
