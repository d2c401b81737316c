import type { Request, RequestId } from "./request.ts";

/**
 * The waiting requests, in the order they are admitted: priority first, then the order they came in. Arrivals
 * append; a preempted request goes back to the front, ahead of those that never ran.
 */
export class RequestQueue implements Iterable<Request> {
  private readonly requests: Request[] = [];

  get length(): number {
    return this.requests.length;
  }

  [Symbol.iterator](): Iterator<Request> {
    return this.requests[Symbol.iterator]();
  }

  at(index: number): Request | undefined {
    return this.requests[index];
  }

  find(requestId: RequestId): Request | undefined {
    return this.requests.find((request) => request.id === requestId);
  }

  push(request: Request): void {
    this.requests.push(request);
  }

  pushFront(request: Request): void {
    this.requests.unshift(request);
  }

  remove(request: Request): void {
    const index = this.requests.indexOf(request);
    if (index !== -1) this.requests.splice(index, 1);
  }

  /** Restores priority order; a stable sort, so within a priority the order stays. */
  sort(): void {
    if (this.requests.some((request) => request.priority !== 0)) this.requests.sort((a, b) => a.priority - b.priority);
  }

  /** Requests that have waited longer than `timeoutMs` since they arrived; a preempted request has had its turn. */
  expired(nowMs: number, timeoutMs: number): Request[] {
    return this.requests.filter((request) => request.numPreemptions === 0 && nowMs - request.arrivalAtMs > timeoutMs);
  }
}
