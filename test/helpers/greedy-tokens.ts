import type { ControlledEvaluateInputItem, LlamaModel, Token } from "node-llama-cpp";

/**
 * The first `count` greedy tokens after `prompt`, from a fresh one-thread context, and the time per token after the
 * first (the first includes the prompt's evaluation).
 */
export async function greedyContinuation(
  model: LlamaModel,
  prompt: readonly Token[],
  count: number,
): Promise<{ tokens: Token[]; msPerToken: number }> {
  const context = await model.createContext({ contextSize: 256, threads: 1 });
  try {
    const tokens: Token[] = [];
    let firstMs = 0;
    for await (const token of context.getSequence().evaluate([...prompt], { temperature: 0, seed: 1 })) {
      tokens.push(token);
      if (tokens.length === 1) firstMs = performance.now();
      if (tokens.length === count) break;
    }
    return { tokens, msPerToken: count > 1 ? (performance.now() - firstMs) / (count - 1) : 0 };
  } finally {
    await context.dispose();
  }
}

/**
 * The first `count` greedy tokens after BOS + "hello world": proof that a model file loads and generates, and a
 * fingerprint for determinism checks.
 */
export async function greedyTokens(model: LlamaModel, count = 5): Promise<number[]> {
  return (await greedyContinuation(model, [model.tokens.bos!, ...model.tokenize("hello world")], count)).tokens;
}

/** The model's greedy next token after each prefix `tokens[0..i]` for i ≥ `from`, from one batched evaluation. */
export async function argmaxAfterEachPrefix(
  model: LlamaModel,
  tokens: readonly Token[],
  from: number,
): Promise<Token[]> {
  const context = await model.createContext({ contextSize: 256, threads: 1 });
  try {
    const input = tokens.map(
      (token, index): ControlledEvaluateInputItem =>
        index < from ? token : [token, { generateNext: { token: true, options: { temperature: 0 } } }],
    );
    const outputs = await context.getSequence().controlledEvaluate(input);
    return outputs.slice(from).map((output) => output!.next.token!);
  } finally {
    await context.dispose();
  }
}
