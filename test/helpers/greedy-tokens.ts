import type { LlamaModel } from "node-llama-cpp";

/**
 * The first `count` greedy tokens after BOS + "hello world", from a fresh one-thread context: proof that a model
 * file loads and generates, and a fingerprint for determinism checks.
 */
export async function greedyTokens(model: LlamaModel, count = 5): Promise<number[]> {
    const context = await model.createContext({ contextSize: 256, threads: 1 });
    try {
        const generated: number[] = [];
        const prompt = [model.tokens.bos!, ...model.tokenize("hello world")];
        for await (const token of context.getSequence().evaluate(prompt, { temperature: 0, seed: 1 })) {
            generated.push(token);
            if (generated.length === count)
                break;
        }
        return generated;
    } finally {
        await context.dispose();
    }
}
