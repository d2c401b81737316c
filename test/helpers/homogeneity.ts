/**
 * A chi-square test of homogeneity between two equal-size samples of outcomes: do they come from one distribution?
 * Outcomes seen fewer than 10 times in both samples together are pooled into one category, so every category's
 * expected count is at least 5 and the chi-square approximation holds. For two samples of equal size,
 * X² = Σ (a − b)² / (a + b) follows χ² with k − 1 degrees of freedom when both come from one distribution; the
 * threshold is its 1 − 10⁻⁶ quantile (Wilson–Hilferty), so an exact sampler fails about once in a million runs.
 */

/** Standard normal quantile for a one-sided 10⁻⁶. */
const Z = 4.753;

/** X² of two equal-size samples, with rare outcomes pooled, and its 1 − 10⁻⁶ threshold. */
export function homogeneity(a: Map<string, number>, b: Map<string, number>): { statistic: number; threshold: number } {
  const cells: [number, number][] = [];
  const pooled: [number, number] = [0, 0];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const cell: [number, number] = [a.get(key) ?? 0, b.get(key) ?? 0];
    if (cell[0] + cell[1] < 10) {
      pooled[0] += cell[0];
      pooled[1] += cell[1];
    } else {
      cells.push(cell);
    }
  }
  if (pooled[0] + pooled[1] > 0) cells.push(pooled);
  const statistic = cells.reduce((sum, [x, y]) => sum + (x - y) ** 2 / (x + y), 0);
  const df = cells.length - 1;
  const threshold = df * (1 - 2 / (9 * df) + Z * Math.sqrt(2 / (9 * df))) ** 3;
  return { statistic, threshold };
}
