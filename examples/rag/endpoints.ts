/**
 * The three HTTP calls the pipeline makes, with plain `fetch`, in the shapes pagoda, llama-server and vLLM answer:
 * OpenAI's `/v1/embeddings` and `/v1/chat/completions`, and Jina's / Cohere v1's `/v1/rerank`. Each role has its own
 * base URL and model id, so one server can play all three roles or each role can have its own.
 */

export interface Endpoint {
  /** Base URL without a trailing slash and without `/v1`, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  /** The model id sent in each request's `model`. */
  readonly model: string;
}

export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

export interface ChatAnswer {
  readonly content: string;
  readonly numCompletionTokens: number;
}

export interface RerankHit {
  /** The document's position in the request's `documents`. */
  readonly index: number;
  readonly relevanceScore: number;
}

/** How long one request may take. Defaults to 120 s: a cold server loads its model on the first one. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;

/** A server answered with an error status or an unexpected body, or could not be reached. */
export class EndpointError extends Error {
  override readonly name = "EndpointError";
  readonly code: "RAG_ERR_HTTP_STATUS" | "RAG_ERR_RESPONSE_SHAPE" | "RAG_ERR_UNREACHABLE" | "RAG_ERR_MODEL";
  /** The HTTP status, or null when there was no answer. */
  readonly statusCode: number | null;

  constructor(code: EndpointError["code"], message: string, statusCode: number | null, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.statusCode = statusCode;
  }
}

async function request(url: string, path: string, body: unknown, timeoutMs: number): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${url}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new EndpointError("RAG_ERR_UNREACHABLE", `${url}${path}: ${(error as Error).message}`, null, error);
  }
  const text = await response.text();
  if (!response.ok) {
    throw new EndpointError(
      "RAG_ERR_HTTP_STATUS",
      `${url}${path} answered ${response.status}: ${text.slice(0, 300)}`,
      response.status,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new EndpointError(
      "RAG_ERR_RESPONSE_SHAPE",
      `${url}${path} answered no JSON: ${text.slice(0, 300)}`,
      response.status,
      error,
    );
  }
}

function shapeError(url: string, path: string, what: string): EndpointError {
  return new EndpointError("RAG_ERR_RESPONSE_SHAPE", `${url}${path}: ${what}`, 200);
}

/** The ids `GET /v1/models` lists. */
export async function listModels(url: string, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<string[]> {
  const body = (await request(url, "/v1/models", undefined, timeoutMs)) as { data?: { id?: unknown }[] };
  if (!Array.isArray(body.data)) throw shapeError(url, "/v1/models", "no data array");
  return body.data.map((model) => String(model.id));
}

/**
 * The model id for a role: the one given, else the only model the server lists. A server listing several (one
 * process serving generator, embedder and reranker) needs the id given: guessing would send a role to the wrong model.
 */
export async function resolveModel(url: string, given: string | undefined, flagName: string): Promise<string> {
  if (given !== undefined && given !== "") return given;
  const ids = await listModels(url);
  if (ids.length === 1 && ids[0] !== undefined) return ids[0];
  throw new EndpointError(
    "RAG_ERR_MODEL",
    `${url} serves ${ids.length === 0 ? "no model" : ids.join(", ")}: name the one to use with ${flagName}`,
    null,
  );
}

/** One vector per input, in input order (sorted by the response's `index`). */
export async function embed(
  endpoint: Endpoint,
  inputs: readonly string[],
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
): Promise<number[][]> {
  const path = "/v1/embeddings";
  const body = (await request(
    endpoint.url,
    path,
    { model: endpoint.model, input: inputs, encoding_format: "float" },
    timeoutMs,
  )) as { data?: { index?: number; embedding?: unknown }[] };
  if (!Array.isArray(body.data) || body.data.length !== inputs.length) {
    throw shapeError(endpoint.url, path, `expected ${inputs.length} embeddings, got ${body.data?.length ?? "none"}`);
  }
  const vectors: number[][] = new Array(inputs.length);
  for (const [position, item] of body.data.entries()) {
    const index = item.index ?? position;
    if (!Array.isArray(item.embedding) || vectors[index] !== undefined || index < 0 || index >= inputs.length) {
      throw shapeError(endpoint.url, path, `bad item at ${position} (index ${index})`);
    }
    vectors[index] = item.embedding as number[];
  }
  return vectors;
}

/** The `topN` most relevant documents, most relevant first. */
export async function rerank(
  endpoint: Endpoint,
  query: string,
  documents: readonly string[],
  topN: number,
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
): Promise<RerankHit[]> {
  const path = "/v1/rerank";
  const body = (await request(
    endpoint.url,
    path,
    { model: endpoint.model, query, documents, top_n: topN, return_documents: false },
    timeoutMs,
  )) as { results?: { index?: unknown; relevance_score?: unknown }[] };
  if (!Array.isArray(body.results)) throw shapeError(endpoint.url, path, "no results array");
  const hits = body.results.map((result, position) => {
    const { index, relevance_score: score } = result;
    if (typeof index !== "number" || typeof score !== "number" || index < 0 || index >= documents.length) {
      throw shapeError(endpoint.url, path, `bad result at ${position}`);
    }
    return { index, relevanceScore: score };
  });
  // Sorted here too: the shape promises it, not every server keeps the promise.
  return hits.sort((a, b) => b.relevanceScore - a.relevanceScore).slice(0, topN);
}

/** The first choice's text; `fields` adds sampling fields (`max_tokens`, `temperature`, `ignore_eos`, …). */
export async function chat(
  endpoint: Endpoint,
  messages: readonly ChatMessage[],
  fields: Readonly<Record<string, unknown>>,
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
): Promise<ChatAnswer> {
  const path = "/v1/chat/completions";
  const body = (await request(endpoint.url, path, { ...fields, model: endpoint.model, messages }, timeoutMs)) as {
    choices?: { message?: { content?: unknown } }[];
    usage?: { completion_tokens?: unknown };
  };
  const content = body.choices?.[0]?.message?.content;
  if (typeof content !== "string") throw shapeError(endpoint.url, path, "no choices[0].message.content");
  const numCompletionTokens = body.usage?.completion_tokens;
  return { content, numCompletionTokens: typeof numCompletionTokens === "number" ? numCompletionTokens : 0 };
}
