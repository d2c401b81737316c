/**
 * Points at the intended spelling when the user wrote a name in another case style (ctx_size, ctxSize, --ctxSize):
 * the text to append to an "unknown" message, or "" when nothing is close.
 */
export function suggestName(name: string, candidates: readonly string[]): string {
  const normalize = (text: string): string => text.toLowerCase().replace(/[-_]/g, "");
  const match = candidates.find((candidate) => normalize(candidate) === normalize(name));
  return match === undefined ? "" : ` (did you mean "${match}"?)`;
}
