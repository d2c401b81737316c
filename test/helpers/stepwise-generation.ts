import assert from "node:assert/strict";
import type { SamplingParams, SequenceEngine, SequenceId, StepItem, TokenId } from "../../src/engine/engine.ts";

export interface StepwiseOptions {
  readonly numGenerated: number;
  readonly sampling: SamplingParams;
  /** How many sequences join per step, in order, while the earlier ones decode; all at once by default. */
  readonly joinPerStep?: number;
}

interface Running {
  readonly sequenceId: SequenceId;
  position: number;
  pending: TokenId[];
  readonly generated: TokenId[];
}

/**
 * The first `numGenerated` tokens after each prompt, driving the engine's steps directly: every running sequence's
 * prompt or last token goes into one batch per step. Returns the tokens by prompt, in order.
 */
export async function generateStepwise(
  engine: SequenceEngine,
  prompts: readonly (readonly TokenId[])[],
  options: StepwiseOptions,
): Promise<TokenId[][]> {
  const joinPerStep = options.joinPerStep ?? prompts.length;
  const running: Running[] = prompts.map((prompt) => {
    const sequenceId = engine.acquireSequence(options.sampling);
    assert.ok(sequenceId !== null);
    return { sequenceId, position: 0, pending: [...prompt], generated: [] };
  });
  for (let step = 0; running.some((entry) => entry.generated.length < options.numGenerated); step++) {
    const active = running.filter(
      (entry, index) => Math.floor(index / joinPerStep) <= step && entry.generated.length < options.numGenerated,
    );
    const items: StepItem[] = active.map((entry) => ({
      sequenceId: entry.sequenceId,
      startPos: entry.position,
      tokens: entry.pending,
      shouldSample: true,
    }));
    const outputs = await engine.step(items);
    outputs.forEach((output, index) => {
      const entry = active[index]!;
      assert.ok(output.token !== null);
      entry.position += entry.pending.length;
      entry.pending = [output.token];
      entry.generated.push(output.token);
    });
  }
  for (const entry of running) engine.releaseSequence(entry.sequenceId);
  return running.map((entry) => entry.generated);
}
