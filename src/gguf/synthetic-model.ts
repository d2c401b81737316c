import { GgufWriter, type GgufKv, type GgufTensor } from "./gguf-writer.ts";

/** Shape and encoding of a synthetic llama model. */
export interface SyntheticLlamaShape {
    /** Total tokens including special, byte and chat-marker tokens. At least 262. Defaults to 2048. */
    vocabSize: number;
    /** Hidden size (n_embd). Must be divisible by `headCount`. Defaults to 128. */
    embeddingLength: number;
    /** Number of transformer blocks. Defaults to 4. */
    blockCount: number;
    /** Attention heads. Defaults to 4. */
    headCount: number;
    /** Key/value heads (grouped-query attention); must divide `headCount`. Defaults to 2. */
    headCountKv: number;
    /** FFN hidden size. Defaults to 384. */
    feedForwardLength: number;
    /** Training context length reported in the metadata. Defaults to 2048. */
    contextLength: number;
    /** Encoding of the weight matrices; norm weights are always F32. Defaults to "F16". */
    tensorType: "F32" | "F16";
}

export interface SyntheticLlamaOptions extends Partial<SyntheticLlamaShape> {
    /** PRNG seed for the weights (low 32 bits are used); the same options always produce a byte-identical file. Defaults to 0. */
    seed?: number;
}

/** A model of a few MB that loads and generates quickly on a CPU. */
export const DEFAULT_SYNTHETIC_SHAPE: Readonly<SyntheticLlamaShape> = Object.freeze({
    vocabSize: 2048,
    embeddingLength: 128,
    blockCount: 4,
    headCount: 4,
    headCountKv: 2,
    feedForwardLength: 384,
    contextLength: 2048,
    tensorType: "F16"
});

const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;
const SPACE = "\u2581";
const CHAT_MARKERS = ["<|im_start|>", "<|im_end|>"] as const;
const WEIGHT_STD = 0.02;

const CHAT_TEMPLATE =
    "{% for message in messages %}" +
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
    "{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const COMMON_WORDS = (
    "the of and to a in is you that it he was for on are as with his they I at be this have from or one had by " +
    "word but not what all were we when your can said there use an each which she do how their if will up other " +
    "about out many then them these so some her would make like him into time has look two more write go see " +
    "number no way could people my than first water been call who oil its now find long down day did get come " +
    "made may part hello world yes test model token text chat user assistant system answer question good new " +
    "say here where help thank please"
).split(" ");

/** Deterministic 32-bit PRNG (mulberry32); uniform floats in [0, 1). */
function mulberry32(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/** FNV-1a, so each tensor gets its own stream independent of generation order. */
function hashName(seed: number, name: string): number {
    let hash = (0x811c9dc5 ^ seed) >>> 0;
    for (let i = 0; i < name.length; i++)
        hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
    return hash;
}

/**
 * Bell-shaped values with standard deviation `std`. Irwin-Hall (sum of four uniforms) is used
 * instead of Box-Muller because it needs no transcendental functions, keeping files byte-identical
 * across JS engines.
 */
function randomValues(count: number, seed: number, name: string, std: number): Float32Array {
    const next = mulberry32(hashName(seed, name));
    const scale = std * Math.sqrt(3);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++)
        out[i] = (next() + next() + next() + next() - 2) * scale;
    return out;
}

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
    for (const word of COMMON_WORDS)
        for (let end = 1; end <= word.length; end++) add(SPACE + word.slice(0, end));
    for (const first of lower)
        for (const second of lower) add(first + second);
    for (const first of lower)
        for (const second of lower) add(SPACE + first + second);
    // Unreachable by merges but harmless; only needed for vocabularies larger than the list above.
    for (let i = 0; pieces.size < count; i++) add(`${SPACE}tok${i}`);
    return [...pieces];
}

interface Vocabulary {
    tokens: string[];
    scores: number[];
    types: number[];
}

function buildVocabulary(vocabSize: number): Vocabulary {
    const tokens = ["<unk>", "<s>", "</s>"];
    const types: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control];
    for (let byte = 0; byte < 256; byte++) {
        tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
        types.push(TOKEN_TYPE.byte);
    }
    const scores = tokens.map(() => 0);
    const pieces = normalPieces(vocabSize - tokens.length - CHAT_MARKERS.length);
    pieces.forEach((piece, index) => {
        tokens.push(piece);
        types.push(TOKEN_TYPE.normal);
        scores.push(-index);
    });
    // Chat markers go last so ids 0..258 keep the standard SentencePiece byte-fallback layout.
    for (const marker of CHAT_MARKERS) {
        tokens.push(marker);
        types.push(TOKEN_TYPE.control);
        scores.push(0);
    }
    return { tokens, scores, types };
}

function resolveShape(options: SyntheticLlamaOptions): SyntheticLlamaShape {
    const defaults = DEFAULT_SYNTHETIC_SHAPE;
    const shape: SyntheticLlamaShape = {
        vocabSize: options.vocabSize ?? defaults.vocabSize,
        embeddingLength: options.embeddingLength ?? defaults.embeddingLength,
        blockCount: options.blockCount ?? defaults.blockCount,
        headCount: options.headCount ?? defaults.headCount,
        headCountKv: options.headCountKv ?? defaults.headCountKv,
        feedForwardLength: options.feedForwardLength ?? defaults.feedForwardLength,
        contextLength: options.contextLength ?? defaults.contextLength,
        tensorType: options.tensorType ?? defaults.tensorType
    };
    const positive = ["vocabSize", "embeddingLength", "blockCount", "headCount", "headCountKv",
        "feedForwardLength", "contextLength"] as const;
    for (const key of positive)
        if (!Number.isSafeInteger(shape[key]) || shape[key] < 1)
            throw new RangeError(`${key} must be a positive integer, got ${shape[key]}`);
    const minimumVocab = 3 + 256 + 1 + CHAT_MARKERS.length;
    if (shape.vocabSize < minimumVocab)
        throw new RangeError(`vocabSize must be at least ${minimumVocab}`);
    if (shape.embeddingLength % shape.headCount !== 0)
        throw new RangeError("embeddingLength must be divisible by headCount");
    if (shape.headCount % shape.headCountKv !== 0)
        throw new RangeError("headCountKv must divide headCount");
    if (shape.tensorType !== "F32" && shape.tensorType !== "F16")
        throw new RangeError(`unsupported tensorType ${String(shape.tensorType)}`);
    return shape;
}

function shapeLabel(shape: SyntheticLlamaShape): string {
    return `v${shape.vocabSize}-d${shape.embeddingLength}-l${shape.blockCount}` +
        `-h${shape.headCount}-kv${shape.headCountKv}-ff${shape.feedForwardLength}-${shape.tensorType.toLowerCase()}`;
}

function buildMetadata(shape: SyntheticLlamaShape, seed: number): GgufKv[] {
    const vocabulary = buildVocabulary(shape.vocabSize);
    const imEnd = vocabulary.tokens.indexOf("<|im_end|>");
    return [
        { key: "general.architecture", type: "string", value: "llama" },
        { key: "general.name", type: "string", value: `pagoda-synthetic-${shapeLabel(shape)}` },
        {
            key: "general.description", type: "string",
            value: `Synthetic test model: all weights are random (seed ${seed}), so its output is meaningless. ` +
                "It exists only to exercise loading, tokenization and generation."
        },
        // llama.cpp file types: 0 = all F32, 1 = mostly F16.
        { key: "general.file_type", type: "uint32", value: shape.tensorType === "F16" ? 1 : 0 },
        { key: "llama.vocab_size", type: "uint32", value: shape.vocabSize },
        { key: "llama.context_length", type: "uint32", value: shape.contextLength },
        { key: "llama.embedding_length", type: "uint32", value: shape.embeddingLength },
        { key: "llama.block_count", type: "uint32", value: shape.blockCount },
        { key: "llama.feed_forward_length", type: "uint32", value: shape.feedForwardLength },
        { key: "llama.attention.head_count", type: "uint32", value: shape.headCount },
        { key: "llama.attention.head_count_kv", type: "uint32", value: shape.headCountKv },
        { key: "llama.rope.dimension_count", type: "uint32", value: shape.embeddingLength / shape.headCount },
        { key: "llama.rope.freq_base", type: "float32", value: 10000 },
        { key: "llama.attention.layer_norm_rms_epsilon", type: "float32", value: 1e-5 },
        { key: "tokenizer.ggml.model", type: "string", value: "llama" },
        { key: "tokenizer.ggml.tokens", type: "array", itemType: "string", value: vocabulary.tokens },
        { key: "tokenizer.ggml.scores", type: "array", itemType: "float32", value: vocabulary.scores },
        { key: "tokenizer.ggml.token_type", type: "array", itemType: "int32", value: vocabulary.types },
        { key: "tokenizer.ggml.unknown_token_id", type: "uint32", value: 0 },
        { key: "tokenizer.ggml.bos_token_id", type: "uint32", value: 1 },
        { key: "tokenizer.ggml.eos_token_id", type: "uint32", value: 2 },
        { key: "tokenizer.ggml.eot_token_id", type: "uint32", value: imEnd },
        { key: "tokenizer.ggml.add_bos_token", type: "bool", value: true },
        { key: "tokenizer.ggml.add_eos_token", type: "bool", value: false },
        { key: "tokenizer.chat_template", type: "string", value: CHAT_TEMPLATE }
    ];
}

function buildTensors(shape: SyntheticLlamaShape, seed: number): GgufTensor[] {
    const nEmbd = shape.embeddingLength;
    const nEmbdKv = (nEmbd / shape.headCount) * shape.headCountKv;
    const nFf = shape.feedForwardLength;
    const matrix = (name: string, dims: [number, number]): GgufTensor => ({
        name, dims, type: shape.tensorType,
        data: () => randomValues(dims[0] * dims[1], seed, name, WEIGHT_STD)
    });
    // llama.cpp keeps 1-D norm weights in F32 regardless of the file type.
    const norm = (name: string): GgufTensor => ({ name, dims: [nEmbd], type: "F32", data: () => new Float32Array(nEmbd).fill(1) });

    const tensors: GgufTensor[] = [
        matrix("token_embd.weight", [nEmbd, shape.vocabSize]),
        norm("output_norm.weight"),
        matrix("output.weight", [nEmbd, shape.vocabSize])
    ];
    for (let block = 0; block < shape.blockCount; block++) {
        const prefix = `blk.${block}`;
        tensors.push(
            norm(`${prefix}.attn_norm.weight`),
            matrix(`${prefix}.attn_q.weight`, [nEmbd, nEmbd]),
            matrix(`${prefix}.attn_k.weight`, [nEmbd, nEmbdKv]),
            matrix(`${prefix}.attn_v.weight`, [nEmbd, nEmbdKv]),
            matrix(`${prefix}.attn_output.weight`, [nEmbd, nEmbd]),
            norm(`${prefix}.ffn_norm.weight`),
            matrix(`${prefix}.ffn_gate.weight`, [nEmbd, nFf]),
            matrix(`${prefix}.ffn_up.weight`, [nEmbd, nFf]),
            matrix(`${prefix}.ffn_down.weight`, [nFf, nEmbd])
        );
    }
    return tensors;
}

/**
 * Writes a llama-architecture GGUF with random weights and a byte-fallback SentencePiece vocabulary.
 * Resolves to the shape actually used (defaults filled in).
 */
export async function writeSyntheticLlama(path: string, options: SyntheticLlamaOptions = {}): Promise<SyntheticLlamaShape> {
    const shape = resolveShape(options);
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed))
        throw new RangeError(`seed must be an integer, got ${seed}`);
    const writer = new GgufWriter({ metadata: buildMetadata(shape, seed), tensors: buildTensors(shape, seed) });
    await writer.writeFile(path);
    return shape;
}
