/**
 * The embedding and rerank requests in flight. A closing server lets them finish within the grace period, as it
 * lets generations finish, and then fails the rest with a 503 the client can retry elsewhere, rather than cutting
 * their connections when the final-write window ends.
 */
export class PooledRequests {
  private readonly running = new Set<AbortController>();
  private readonly waiters: (() => void)[] = [];

  /** A request starts; abort its inputs with the controller's signal, and call `finish` when it is answered. */
  start(): AbortController {
    const controller = new AbortController();
    this.running.add(controller);
    return controller;
  }

  finish(controller: AbortController): void {
    this.running.delete(controller);
    if (this.running.size === 0) for (const resolve of this.waiters.splice(0)) resolve();
  }

  /** Resolves once no request is in flight (at once when none is). */
  drained(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Fails every request in flight with `reason`: their inputs not yet decoded are dropped. */
  abortAll(reason: Error): void {
    for (const controller of this.running) controller.abort(reason);
  }
}
