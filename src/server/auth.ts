/**
 * API keys: clients send `Authorization: Bearer <key>`, as OpenAI's clients do. Keys are held only as SHA-256
 * digests and every request is compared with every key in constant time, so neither the position of the first
 * differing byte nor which key matched shows in the response time.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ConfigError } from "../config/config-error.ts";
import { PagodaError } from "./errors.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** A stable id of the key the request authenticated with (a digest prefix, never the key); null when open. */
    apiKeyId: string | null;
  }
}

interface StoredKey {
  readonly digest: Buffer;
  readonly id: string;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

export class ApiKeyVerifier {
  private readonly keys: readonly StoredKey[];

  constructor(keys: readonly string[]) {
    this.keys = [...new Set(keys)].map((key) => {
      const digest = sha256(key);
      return { digest, id: `key-${digest.subarray(0, 6).toString("hex")}` };
    });
  }

  get isEnabled(): boolean {
    return this.keys.length > 0;
  }

  /** The id of the key `presented` equals, or null. Always compares with every key: no early exit. */
  match(presented: string): string | null {
    const digest = sha256(presented);
    let matched: string | null = null;
    for (const key of this.keys) {
      // Digests have one length, so timingSafeEqual never throws; a match is remembered, never returned early.
      const isEqual = timingSafeEqual(digest, key.digest);
      matched = isEqual ? key.id : matched;
    }
    return matched;
  }

  /** The key id for an `Authorization` header, or a 401 in OpenAI's words. */
  authenticate(authorization: string | undefined): string {
    const token = bearerToken(authorization);
    if (token === null) {
      throw new PagodaError(
        "PAGODA_ERR_MISSING_API_KEY",
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      );
    }
    const id = this.match(token);
    if (id === null) throw new PagodaError("PAGODA_ERR_INVALID_API_KEY", "Incorrect API key provided.");
    return id;
  }
}

/**
 * The credentials of `Bearer <token>` (scheme case-insensitive, RFC 7235), or null. Parsed by hand, in linear
 * time: a backtracking pattern over attacker-chosen whitespace blocked the event loop for 0.3 s per request.
 */
function bearerToken(authorization: string | undefined): string | null {
  const header = (authorization ?? "").trim();
  const space = header.search(/[ \t]/);
  if (space < 0 || header.slice(0, space).toLowerCase() !== "bearer") return null;
  const token = header.slice(space + 1).trim();
  return token.length > 0 ? token : null;
}

export interface AuthOptions {
  readonly keys: readonly string[];
  /** Routes (as registered, e.g. "/health") answered without a key. */
  readonly publicRoutes: readonly string[];
}

/**
 * Requires a key on every request but the public routes, unknown routes included, so probing cannot map the API.
 * An app-level onRequest hook: it runs before the body is read and before any route-level hook (rate limiting
 * counts only authenticated requests, per key).
 */
export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  app.decorateRequest("apiKeyId", null);
  const verifier = new ApiKeyVerifier(options.keys);
  if (!verifier.isEnabled) return;
  const publicRoutes = new Set(options.publicRoutes);
  app.addHook("onRequest", async (request: FastifyRequest) => {
    // routeOptions.url is the matched route's pattern; undefined for unknown routes, which stay private.
    const route = request.routeOptions.url;
    if (route !== undefined && publicRoutes.has(route)) return;
    request.apiKeyId = verifier.authenticate(request.headers.authorization);
  });
}

/** Keys from `--api-key` and the lines of `--api-key-file` (blank lines and `#` comments skipped). */
export function resolveApiKeys(keys: readonly string[], keyFile: string | undefined): string[] {
  if (keyFile === undefined) return [...keys];
  let text: string;
  try {
    text = readFileSync(keyFile, "utf8");
  } catch (error) {
    const reason = error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error);
    throw new ConfigError(`--api-key-file: ${keyFile} cannot be read (${reason})`, {
      setting: "--api-key-file",
      cause: error,
    });
  }
  const fromFile = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith("#"));
  // A key file with no key would silently open the server; refuse to start instead.
  if (fromFile.length === 0) {
    throw new ConfigError(`--api-key-file: ${keyFile} holds no key (one key per line)`, { setting: "--api-key-file" });
  }
  return [...keys, ...fromFile];
}
