/**
 * The model's tokenizer and chat template, in the engine seam's plain token ids.
 */
import type { ChatWrapper, LlamaModel, Token } from "node-llama-cpp";
import { chatWrapperFor, toChatHistory, toChatModelFunctions, toolSyntaxOf } from "./chat-template.ts";
import type { ChatMessage, ChatTool, ChatToolSyntax, RenderedChat, TokenId } from "./engine.ts";

export class LlamaTokenizer {
  private readonly model: LlamaModel;
  private readonly chatWrapper: ChatWrapper;
  /** The tool-call syntax the chat template teaches, when pagoda knows it. */
  readonly toolSyntax: ChatToolSyntax | null;

  /** `chatTemplate`: see `chatWrapperFor`; null takes the GGUF's. */
  constructor(model: LlamaModel, chatTemplate: string | null = null) {
    this.model = model;
    this.chatWrapper = chatWrapperFor(model, chatTemplate);
    this.toolSyntax = toolSyntaxOf(this.chatWrapper);
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

  /** See `PoolingEngine.tokenizeWithSpecials`; follows llama.cpp's `llama_tokenize` with `add_special`. */
  tokenizeWithSpecials(text: string): TokenId[] {
    const tokens = this.model.tokens;
    const ids: Token[] = [];
    if (tokens.shouldPrependBosToken && tokens.bos !== null) ids.push(tokens.bos);
    ids.push(...this.model.tokenize(text, false));
    const isWordPiece = this.model.fileInfo.metadata.tokenizer?.ggml?.model === "bert";
    if (isWordPiece && tokens.sep !== null) ids.push(tokens.sep);
    else if (!isWordPiece && tokens.shouldAppendEosToken && tokens.eos !== null) ids.push(tokens.eos);
    return fromTokens(ids);
  }

  /** See `ServerEngine.rerankInput`; follows llama.cpp's server (`format_prompt_rerank`). */
  rerankInput(query: string, document: string): TokenId[] {
    const template = this.rerankTemplate();
    if (template !== null) {
      // As llama.cpp's server: substituted, then tokenized whole with special tokens parsed, so the boundaries merge
      // as there (tokenizing the pieces apart changed a Qwen3 reranker's score by 0.09).
      const prompt = template.replaceAll("{query}", query).replaceAll("{document}", document);
      return fromTokens(this.model.tokenize(prompt, true));
    }
    const tokens = this.model.tokens;
    const eos = tokens.eos ?? tokens.sep;
    const metadata = this.model.fileInfo.metadata.tokenizer?.ggml as { add_sep_token?: unknown } | undefined;
    const ids: Token[] = [];
    if (tokens.shouldPrependBosToken && tokens.bos !== null) ids.push(tokens.bos);
    ids.push(...this.model.tokenize(query, false));
    if (tokens.shouldAppendEosToken && eos !== null) ids.push(eos);
    if (metadata?.add_sep_token === true && tokens.sep !== null) ids.push(tokens.sep);
    ids.push(...this.model.tokenize(document, false));
    if (tokens.shouldAppendEosToken && eos !== null) ids.push(eos);
    return fromTokens(ids);
  }

  private rerankTemplate(): string | null {
    const tokenizer: Record<string, unknown> = this.model.fileInfo.metadata.tokenizer ?? {};
    const template = tokenizer["chat_template.rerank"];
    return typeof template === "string" && template.includes("{query}") && template.includes("{document}")
      ? template
      : null;
  }

  /**
   * The text `token` adds after `previous`: decoded as a pair, so a character split across the two is whole in
   * one of them, and a SentencePiece word-start space is kept.
   */
  pieceAfter(previous: TokenId | null, token: TokenId): string {
    if (previous === null) return this.detokenize([token]);
    const before = this.detokenize([previous]);
    const both = this.detokenize([previous, token]);
    return both.startsWith(before) ? both.slice(before.length) : this.detokenize([token]);
  }

  /**
   * Tokens that spell exactly `text`, for feeding text to a grammar; null when the tokenizer's tokens do not (a
   * SentencePiece tokenizer may add a leading space, which is tried without).
   */
  tokensSpelling(text: string): TokenId[] | null {
    const tokens = this.tokenize(text);
    if (this.detokenize(tokens) === text) return tokens;
    const spaced = this.tokenize(`\n${text}`);
    const newline = this.tokenize("\n");
    const rest = spaced.slice(newline.length);
    return this.detokenize(rest) === text ? rest : null;
  }

  /** A token with no text of its own in the output (a control token such as `<|im_end|>`). */
  private isSpecialToken(token: Token): boolean {
    return this.model.detokenize([token], false) === "" && this.model.detokenize([token], true) !== "";
  }

  isEndOfGeneration(token: TokenId): boolean {
    return this.model.isEogToken(asToken(token));
  }

  /** The prompt for the model's next turn, and what ends that turn in this template. */
  renderChat(messages: readonly ChatMessage[], tools: readonly ChatTool[] | null = null): RenderedChat {
    const chatHistory = toChatHistory(messages);
    const availableFunctions =
      tools !== null && tools.length > 0 && this.toolSyntax !== null ? toChatModelFunctions(tools) : undefined;
    const state = this.chatWrapper.generateContextState({ chatHistory, availableFunctions });
    const stopStrings: string[] = [];
    const stopTokens: TokenId[] = [];
    for (const trigger of state.stopGenerationTriggers) {
      const triggerTokens = trigger.tokenize(this.model.tokenizer);
      const first = triggerTokens[0];
      if (first === undefined) continue;
      // A trigger that starts with a special token (`<|im_end|>` and the newline after it) ends at that token: the
      // output text never shows special tokens, so the text of the rest alone would stop ordinary output.
      if (this.isSpecialToken(first)) {
        stopTokens.push(fromToken(first));
        continue;
      }
      if (triggerTokens.length === 1) stopTokens.push(fromToken(first));
      const text = this.model.detokenize(triggerTokens, false);
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
