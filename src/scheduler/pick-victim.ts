import type { Request } from "./request.ts";

/**
 * The running request to preempt: the lowest priority (highest value), latest arrival. With `above`, only one
 * strictly less urgent than that priority qualifies.
 */
export function pickVictim(running: readonly Request[], above: number | null): Request | null {
  let victim: Request | null = null;
  for (const request of running) {
    if (above !== null && request.priority <= above) continue;
    if (
      victim === null ||
      request.priority > victim.priority ||
      (request.priority === victim.priority && request.arrivalAtMs >= victim.arrivalAtMs)
    ) {
      victim = request;
    }
  }
  return victim;
}
