import { greedySampling, type SamplingParams, type TokenId } from "../../src/engine/engine.ts";
import { type FinishedOutput, type GenerationParams, type OutputDelta, Request } from "../../src/scheduler/request.ts";
import { asRequestId } from "./ids.ts";

export const GREEDY: SamplingParams = greedySampling(1);

/** `count` prompt tokens of the fake vocabulary (ids 2 to 91), spread so that prompts from different `first` differ. */
export function spreadTokens(count: number, first = 10): number[] {
  return Array.from({ length: count }, (_, index) => 2 + ((first + index * 7) % 90));
}

/** A sink that records everything, for assertions. */
export class RecordingSink {
  readonly deltas: OutputDelta[] = [];
  finished: FinishedOutput | null = null;
  readonly done: Promise<FinishedOutput>;
  private resolveDone: (output: FinishedOutput) => void = () => undefined;

  constructor() {
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  get text(): string {
    return this.deltas.map((delta) => delta.text).join("");
  }

  get tokens(): TokenId[] {
    return this.deltas.flatMap((delta) => [...delta.tokens]);
  }

  onDelta(delta: OutputDelta): void {
    this.deltas.push(delta);
  }

  onFinish(output: FinishedOutput): void {
    this.finished = output;
    this.resolveDone(output);
  }
}

/** A scheduler request and the sink its output goes to, for tests that drive the core by hand. */
export interface MadeRequest {
  readonly request: Request;
  readonly sink: RecordingSink;
}

/** Tests write prompts as plain numbers; any array of them passes for token ids here. */
export function makeRequest(
  id: string,
  promptTokens: readonly number[],
  params: Partial<GenerationParams> = {},
): MadeRequest {
  const request = new Request(
    asRequestId(id),
    promptTokens as readonly TokenId[],
    { maxTokens: 16, sampling: GREEDY, stopStrings: [], stopTokens: [], ignoreEos: false, ...params },
    0,
  );
  return { request, sink: new RecordingSink() };
}
