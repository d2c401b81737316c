/**
 * The plan of the context a `pagoda` server creates: its settings default to the server's own, read from the
 * configuration schema (the one place defaults live), and become plan options the way src/runtime.ts and the
 * engine turn the configuration into a llama.cpp context. So a bare `pagoda plan model.gguf` plans what a bare
 * `pagoda --model model.gguf` allocates.
 */
import { ConfigSchema, type FLASH_ATTENTION_MODES, type KV_LAYOUTS } from "../config/config-schema.ts";
import type { KvCacheType, PlanOptions } from "./memory-plan.ts";

export type KvLayout = (typeof KV_LAYOUTS)[number];
export type FlashAttentionMode = (typeof FLASH_ATTENTION_MODES)[number];

/** The server settings that shape its context, named as in the configuration. */
export interface ServerContextSettings {
  readonly ctxSize: number;
  readonly parallel: number;
  readonly batchSize: number;
  /** "shared": one KV pool for all sequences; "slabs": `ctxSize` cells reserved per sequence. */
  readonly kvLayout: KvLayout;
  /** Cells of the shared pool; absent means every sequence's whole context (`ctxSize` × `parallel`). */
  readonly kvCacheTokens?: number;
  readonly flashAttn: FlashAttentionMode;
  readonly kvType: KvCacheType;
  /** Not a server setting (node-llama-cpp never splits a batch); only for planning other contexts. */
  readonly ubatchSize?: number;
}

const schema = ConfigSchema.shape;

/** What a server started without flags runs with. */
export const SERVER_CONTEXT_DEFAULTS: Readonly<ServerContextSettings> = Object.freeze({
  ctxSize: schema.ctxSize.parse(undefined),
  parallel: schema.parallel.parse(undefined),
  batchSize: schema.batchSize.parse(undefined),
  kvLayout: schema.kvLayout.parse(undefined),
  flashAttn: schema.flashAttn.parse(undefined),
  // No setting chooses it: the engine never asks for another type than node-llama-cpp's f16.
  kvType: "f16",
});

/**
 * The plan options of the context a server with these settings creates on CPU. Throws a RangeError, as
 * `planMemory` does for options no server runs with, for a pool size given with the slab layout.
 */
export function serverPlanOptions(settings: ServerContextSettings): PlanOptions {
  const isShared = settings.kvLayout === "shared";
  if (!isShared && settings.kvCacheTokens !== undefined)
    throw new RangeError("kvCacheTokens sizes the shared KV pool; the slab layout has none");
  return {
    ctxSize: settings.ctxSize,
    parallel: settings.parallel,
    batchSize: settings.batchSize,
    kvType: settings.kvType,
    // As the runtime sizes the pool when no size or memory budget is given.
    kvCacheTokens: isShared ? (settings.kvCacheTokens ?? settings.ctxSize * settings.parallel) : null,
    ...(settings.ubatchSize === undefined ? {} : { ubatchSize: settings.ubatchSize }),
    // "auto" is the planner's default, which is the engine's choice on CPU.
    ...(settings.flashAttn === "auto" ? {} : { flashAttention: settings.flashAttn === "on" }),
  };
}
