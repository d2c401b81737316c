/**
 * What the process does when the engine loop itself dies (every request has already been failed): health turns
 * 503 at once, the fault is counted, the server closes, and the process exits non-zero so that a supervisor
 * restarts it instead of it hanging with a dead engine.
 */
import type { FastifyInstance } from "fastify";
import type { ServingState } from "./serving-state.ts";

export interface EngineFaultOptions {
  readonly app: FastifyInstance;
  readonly serving: ServingState;
  /** Defaults to `app.close()`. */
  readonly close?: () => Promise<void>;
  /** Ends the process; `process.exit` in main, a recorder in tests. */
  readonly exit: (code: number) => void;
}

/** The exit code after an engine fault. */
export const ENGINE_FAULT_EXIT_CODE = 1;

/** Returns the engine loop's `onFatal` hook. A second fault while closing changes nothing. */
export function engineFaultHandler(options: EngineFaultOptions): (error: Error) => void {
  let isHandled = false;
  return () => {
    if (isHandled) return;
    isHandled = true;
    options.serving.markFailed();
    options.app.serverMetrics.observeEngineFault();
    const close = options.close ?? (() => options.app.close());
    close()
      .catch((error: unknown) => options.app.log.error({ err: error }, "error while closing after an engine fault"))
      .finally(() => options.exit(ENGINE_FAULT_EXIT_CODE));
  };
}
