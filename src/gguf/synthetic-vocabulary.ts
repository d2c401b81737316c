/**
 * A SentencePiece vocabulary for synthetic models: control tokens, the 256 byte-fallback tokens, letters, common
 * words with all their prefixes, letter pairs, then filler pieces up to any size, any user-defined tokens a chat
 * template needs, and two chat markers last. Any text tokenizes (unknown characters fall back to bytes), whatever
 * the vocabulary size.
 */

const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, byte: 6 } as const;
const SPACE = "\u2581";
const CHAT_MARKERS = ["<|im_start|>", "<|im_end|>"] as const;

/** Control and byte tokens, one normal piece and the chat markers. */
export const MIN_SYNTHETIC_VOCAB_SIZE = 3 + 256 + 1 + CHAT_MARKERS.length;

/** ChatML, using the two chat markers at the end of the vocabulary. */
export const SYNTHETIC_CHAT_TEMPLATE =
  "{% for message in messages %}" +
  "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Words a synthetic vocabulary holds whole, so that test prompts tokenize into few tokens. */
export const COMMON_WORDS = (
  "the of and to a in is you that it he was for on are as with his they I at be this have from or one had by " +
  "word but not what all were we when your can said there use an each which she do how their if will up other " +
  "about out many then them these so some her would make like him into time has look two more write go see " +
  "number no way could people my than first water been call who oil its now find long down day did get come " +
  "made may part hello world yes test model token text chat user assistant system answer question good new " +
  "say here where help thank please"
).split(" ");

/**
 * Normal pieces in priority order. Word pieces come with every "▁"-prefixed prefix so the
 * SentencePiece bigram merge can actually reach whole words; earlier pieces get higher scores.
 */
function normalPieces(count: number): string[] {
  const pieces = new Set<string>();
  const add = (piece: string): void => {
    if (pieces.size < count) pieces.add(piece);
  };
  const lower = [..."abcdefghijklmnopqrstuvwxyz"];
  const upper = lower.map((letter) => letter.toUpperCase());
  const digits = [..."0123456789"];

  add(SPACE);
  for (const letter of lower) add(SPACE + letter);
  for (const char of [...lower, ...upper, ...digits, ...".,!?'\":;-()[]{}/*+=<>#@&%$_|~`^\\"]) add(char);
  for (const char of [...upper, ...digits]) add(SPACE + char);
  for (const word of COMMON_WORDS) for (let end = 1; end <= word.length; end++) add(SPACE + word.slice(0, end));
  for (const first of lower) for (const second of lower) add(first + second);
  for (const first of lower) for (const second of lower) add(SPACE + first + second);
  // Filler for vocabularies larger than the list above (a real 128k vocabulary, say). Few texts merge into
  // these pieces, and those that do still detokenize to themselves.
  for (let i = 0; pieces.size < count; i++) add(`${SPACE}tok${i}`);
  return [...pieces];
}

export interface SyntheticVocabulary {
  tokens: string[];
  scores: number[];
  types: number[];
}

/**
 * Token texts, scores and types for `vocabSize` tokens (at least {@link MIN_SYNTHETIC_VOCAB_SIZE} plus the
 * user-defined tokens). User-defined tokens (such as `<tool_call>`) take the place of the last filler pieces:
 * llama.cpp splits them out of any text and detokenizes them as text, unlike the control-type chat markers.
 */
export function buildSyntheticVocabulary(
  vocabSize: number,
  userDefinedTokens: readonly string[] = [],
): SyntheticVocabulary {
  const minimum = MIN_SYNTHETIC_VOCAB_SIZE + userDefinedTokens.length;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < minimum)
    throw new RangeError(`vocabSize must be at least ${minimum}`);
  const tokens = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control];
  for (let byte = 0; byte < 256; byte++) {
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TOKEN_TYPE.byte);
  }
  const scores = tokens.map(() => 0);
  const pieces = normalPieces(vocabSize - tokens.length - userDefinedTokens.length - CHAT_MARKERS.length);
  pieces.forEach((piece, index) => {
    tokens.push(piece);
    types.push(TOKEN_TYPE.normal);
    scores.push(-index);
  });
  for (const token of userDefinedTokens) {
    if (tokens.includes(token)) throw new RangeError(`user-defined token ${token} is already a piece`);
    tokens.push(token);
    types.push(TOKEN_TYPE.userDefined);
    scores.push(0);
  }
  // Chat markers go last so ids 0..258 keep the standard SentencePiece byte-fallback layout.
  for (const marker of CHAT_MARKERS) {
    tokens.push(marker);
    types.push(TOKEN_TYPE.control);
    scores.push(0);
  }
  return { tokens, scores, types };
}
