/**
 * The ids every layer shares, branded so that one kind never passes for another (nor a count or a position for
 * any of them). This module imports nothing, so the server, the scheduler, the cache, spec and the engine can all
 * name them without an upward import.
 *
 * A plain value becomes an id only where it enters pagoda: token ids from the tokenizer, the sampler or a validated
 * request body; sequence ids from the engine that hands out its slots; request ids from the route that accepts the
 * request. Block ids are the cache's own (`BlockId` in src/cache/block.ts).
 */

/** An index into the model's vocabulary. */
export type TokenId = number & { readonly __brand: "TokenId" };

/** One of the engine's sequence slots, held by one running request at a time. */
export type SequenceId = number & { readonly __brand: "SequenceId" };

/** One request of the engine loop; the server submits one per choice of an HTTP request. */
export type RequestId = string & { readonly __brand: "RequestId" };
