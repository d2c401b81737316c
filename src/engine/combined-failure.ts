/**
 * The one error to throw for work that ran to its end despite failing (every sampler of a step, every deferred KV
 * change, a cleanup after a failure): a single failure as it was, several as an AggregateError that leads with the
 * first one's message, so no failure is lost to the one that happened to be thrown.
 */
export function combinedFailure(failures: readonly unknown[]): unknown {
  if (failures.length === 0) throw new RangeError("there is no failure to combine");
  const first = failures[0];
  if (failures.length === 1) return first;
  const message = first instanceof Error ? first.message : String(first);
  return new AggregateError(failures, `${message} (and ${failures.length - 1} more failures)`);
}
