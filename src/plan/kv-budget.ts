/**
 * llama.cpp pads a context to whole multiples of this many cells; tokens per sequence are sized in such multiples,
 * so the padding never exceeds the budget.
 */
export const KV_CELL_PADDING = 256;

/**
 * The tokens per sequence that fit `budgetBytes` of KV cache across `parallel` sequences: rounded down to a
 * multiple of 256 (llama.cpp pads the cache to one, so a multiple is allocated exactly) and capped at
 * `maxTokens`. Null when not even 256 tokens per sequence fit.
 */
export function contextSizeForKvBudget(
  kvBytesPerToken: number,
  parallel: number,
  budgetBytes: number,
  maxTokens: number,
): number | null {
  if (kvBytesPerToken <= 0) return maxTokens;
  const perSequence = Math.floor(budgetBytes / (kvBytesPerToken * parallel) / KV_CELL_PADDING) * KV_CELL_PADDING;
  if (perSequence < KV_CELL_PADDING) return null;
  return Math.min(perSequence, maxTokens);
}
