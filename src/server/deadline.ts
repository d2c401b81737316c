/**
 * A generation's time limit (`--request-timeout`). When it passes, `signal` aborts with a 504 `PagodaError` as its
 * reason; the route stops the generation through the same abort path a client disconnect uses, so the sequence is
 * freed at the next engine step, and answers with that error (an error frame, then [DONE], on a stream).
 */
import { PagodaError } from "./errors.ts";

export class RequestDeadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | null;

  /** `timeoutMs` 0 never expires. */
  constructor(timeoutMs: number) {
    if (timeoutMs <= 0) {
      this.timer = null;
      return;
    }
    this.timer = setTimeout(() => {
      const seconds = timeoutMs / 1000;
      this.controller.abort(
        new PagodaError(
          "PAGODA_ERR_REQUEST_TIMEOUT",
          `The request did not finish within this server's limit of ${seconds} s (--request-timeout-seconds) and was stopped. Ask for fewer tokens or retry later.`,
        ),
      );
    }, timeoutMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The timeout error once the deadline has passed, else null. */
  get error(): PagodaError | null {
    const signal = this.controller.signal;
    return signal.aborted && signal.reason instanceof PagodaError ? signal.reason : null;
  }

  /** Calls `onExpire` when the deadline passes (never, once cleared). */
  onExpire(onExpire: () => void): void {
    this.controller.signal.addEventListener("abort", onExpire, { once: true });
  }

  /** Stops the timer; call it in `finally` once the response is complete. */
  clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
  }
}
