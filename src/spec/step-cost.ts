/**
 * How long a target step takes for a number of tokens: a line `base + perToken × tokens`, fitted by exponentially
 * weighted least squares over recent steps, so it follows load and context growth. Speculation needs the marginal
 * cost of K more tokens in the step it joins. It starts from two pseudo-steps of a decode-bound model (a step costs
 * one unit plus a tenth per token: reading the weights dominates), which the measured steps soon outweigh.
 */
const DECAY = 0.98;
const PRIOR: readonly (readonly [numTokens: number, durationMs: number])[] = [
  [1, 1.1],
  [16, 2.6],
];

export class StepCostModel {
  private weight = 0;
  private sumX = 0;
  private sumY = 0;
  private sumXX = 0;
  private sumXY = 0;

  constructor() {
    for (const [numTokens, durationMs] of PRIOR) this.observe(numTokens, durationMs);
  }

  observe(numTokens: number, durationMs: number): void {
    if (!(numTokens > 0) || !(durationMs >= 0)) return;
    this.weight = this.weight * DECAY + 1;
    this.sumX = this.sumX * DECAY + numTokens;
    this.sumY = this.sumY * DECAY + durationMs;
    this.sumXX = this.sumXX * DECAY + numTokens * numTokens;
    this.sumXY = this.sumXY * DECAY + numTokens * durationMs;
  }

  /** Estimated milliseconds of a step carrying `numTokens` tokens. */
  stepMs(numTokens: number): number {
    const meanX = this.sumX / this.weight;
    const meanY = this.sumY / this.weight;
    const varianceX = this.sumXX / this.weight - meanX * meanX;
    // Steps all of one size say nothing about the slope: keep the prior's shape, scaled to what was measured.
    if (varianceX < 1e-6 * Math.max(1, meanX * meanX)) return (meanY * (1 + 0.1 * numTokens)) / (1 + 0.1 * meanX);
    const perToken = Math.max(0, (this.sumXY / this.weight - meanX * meanY) / varianceX);
    const base = Math.max(0, meanY - perToken * meanX);
    return base + perToken * numTokens;
  }
}
