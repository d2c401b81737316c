/**
 * node-llama-cpp's `Llama` (its native bindings), loaded once per process and shared by every engine. On linux,
 * `getLlama` first loads a prebuilt binary in a child process to check that it does not crash (about 0.5 s), unless
 * the install step registered the patched addon as a local build (tools/addon-local-build.ts; GPU builds keep the
 * check). The server starts this before loading the rest of itself, so that any check overlaps that work.
 */
import type { Llama } from "node-llama-cpp";

export type GpuOption = "auto" | "cuda" | "metal" | "vulkan" | "false";

/** Receives llama.cpp's own log lines at warn level and above. */
export type NativeLogSink = (level: "error" | "warn", message: string) => void;

let loading: { readonly gpu: GpuOption; readonly llama: Promise<Llama> } | null = null;
let sink: NativeLogSink | null = null;

/** The process's Llama for `gpu`; the first call starts loading it, later ones share it. */
export function loadLlama(gpu: GpuOption): Promise<Llama> {
  if (loading !== null && loading.gpu === gpu) return loading.llama;
  const llama = import("node-llama-cpp").then(({ getLlama, LlamaLogLevel }) =>
    getLlama({
      gpu: gpu === "false" ? false : gpu,
      build: "never",
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => {
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) sink?.("error", message);
        else if (level === LlamaLogLevel.warn) sink?.("warn", message);
      },
    }),
  );
  loading = { gpu, llama };
  // A failed load is retried by the next call, and reported by whoever awaits it.
  llama.catch(() => {
    if (loading?.llama === llama) loading = null;
  });
  return llama;
}

/** Where llama.cpp's log lines go from now on; the last engine loaded decides. */
export function setNativeLogSink(next: NativeLogSink | undefined): void {
  sink = next ?? null;
}
