/**
 * The model's tokenizer and chat template, in the engine seam's plain token ids.
 */
import {
  type ChatHistoryItem,
  type ChatWrapper,
  type LlamaModel,
  resolveChatWrapper,
  type Token,
} from "node-llama-cpp";
import type { ChatMessage, RenderedChat, TokenId } from "./engine.ts";

export class LlamaTokenizer {
  private readonly model: LlamaModel;
  private readonly chatWrapper: ChatWrapper;

  constructor(model: LlamaModel) {
    this.model = model;
    this.chatWrapper = resolveChatWrapper(model);
  }

  tokenize(text: string, options: { addBos?: boolean } = {}): TokenId[] {
    const tokens = this.model.tokenize(text, false);
    const bos = this.model.tokens.bos;
    if (options.addBos === true && bos != null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos) {
      return fromTokens([bos, ...tokens]);
    }
    return fromTokens(tokens);
  }

  detokenize(tokens: readonly TokenId[]): string {
    return this.model.detokenize(asTokens(tokens), false);
  }

  isEndOfGeneration(token: TokenId): boolean {
    return this.model.isEogToken(asToken(token));
  }

  /** The prompt for the model's next turn, and what ends that turn in this template. */
  renderChat(messages: readonly ChatMessage[]): RenderedChat {
    const chatHistory: ChatHistoryItem[] = messages.map((message): ChatHistoryItem => {
      if (message.role === "system" || message.role === "developer") return { type: "system", text: message.content };
      if (message.role === "assistant") return { type: "model", response: [message.content] };
      return { type: "user", text: message.content };
    });
    chatHistory.push({ type: "model", response: [] });
    const state = this.chatWrapper.generateContextState({ chatHistory });
    const stopStrings: string[] = [];
    const stopTokens: TokenId[] = [];
    for (const trigger of state.stopGenerationTriggers) {
      const triggerTokens = trigger.tokenize(this.model.tokenizer);
      const text = this.model.detokenize(triggerTokens, false);
      if (triggerTokens.length === 1 && triggerTokens[0] !== undefined) stopTokens.push(...fromTokens(triggerTokens));
      if (text.length > 0) stopStrings.push(text);
    }
    return { tokens: fromTokens(state.contextText.tokenize(this.model.tokenizer)), stopStrings, stopTokens };
  }
}

/**
 * node-llama-cpp brands token ids with its own brand; both name the same vocabulary index. These are the only
 * conversions between the two.
 */
export function asTokens(tokens: readonly TokenId[]): Token[] {
  return tokens as readonly number[] as Token[];
}

export function fromTokens(tokens: readonly Token[]): TokenId[] {
  return tokens as readonly number[] as TokenId[];
}

export function asToken(token: TokenId): Token {
  return token as number as Token;
}

export function fromToken(token: Token): TokenId {
  return token as number as TokenId;
}
