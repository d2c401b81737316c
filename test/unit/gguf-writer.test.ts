import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import { f16BitsToNumber, float32ToF16Bits } from "../../src/gguf/float16.ts";
import type { GgufKv } from "../../src/gguf/gguf-kv.ts";
import { parseGgufHeader, readGgufHeader } from "../../src/gguf/gguf-reader.ts";
import { type GgufSpec, GgufWriter } from "../../src/gguf/gguf-writer.ts";
import { quantizeQ4_0, quantizeQ8_0 } from "../../src/gguf/quantize.ts";
import { DEFAULT_SYNTHETIC_SHAPE, writeSyntheticLlama } from "../../src/gguf/synthetic-model.ts";

const allTypes: GgufKv[] = [
  { key: "t.u8", type: "uint8", value: 255 },
  { key: "t.i8", type: "int8", value: -128 },
  { key: "t.u16", type: "uint16", value: 65535 },
  { key: "t.i16", type: "int16", value: -32768 },
  { key: "t.u32", type: "uint32", value: 4294967295 },
  { key: "t.i32", type: "int32", value: -2147483648 },
  { key: "t.u64", type: "uint64", value: 2n ** 64n - 1n },
  { key: "t.i64", type: "int64", value: -(2n ** 63n) },
  { key: "t.f32", type: "float32", value: -1.25 },
  { key: "t.f64", type: "float64", value: Math.PI },
  { key: "t.true", type: "bool", value: true },
  { key: "t.false", type: "bool", value: false },
  { key: "t.str", type: "string", value: "héllo \u2581 世界 \u{1F600}" },
  { key: "t.empty", type: "string", value: "" },
  { key: "t.strs", type: "array", itemType: "string", value: ["a", "", "<0x0A>", "\u2581the"] },
  { key: "t.i32s", type: "array", itemType: "int32", value: [1, -2, 6] },
  { key: "t.f32s", type: "array", itemType: "float32", value: [0, -0.5, 1024] },
  { key: "t.u8s", type: "array", itemType: "uint8", value: [] },
  { key: "t.bools", type: "array", itemType: "bool", value: [true, false] },
  { key: "t.u64s", type: "array", itemType: "uint64", value: [0n, 7n] },
];

function sampleSpec(extra: GgufKv[] = []): GgufSpec {
  return {
    metadata: [{ key: "general.architecture", type: "string", value: "test" }, ...extra],
    tensors: [
      { name: "a", dims: [3], type: "F32", data: new Float32Array([1, 2, 3]) },
      { name: "b", dims: [5, 3], type: "F16", data: () => Float32Array.from({ length: 15 }, (_, i) => i / 4) },
      { name: "c", dims: [2, 2, 2, 2], type: "F32", data: new Float32Array(16).fill(-1) },
    ],
  };
}

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

test("metadata of every value type round-trips", () => {
  const header = parseGgufHeader(new GgufWriter({ metadata: allTypes, tensors: [] }).toBuffer());
  assert.equal(header.version, 3);
  assert.deepEqual(
    header.metadata,
    allTypes.map((kv) => (kv.type === "array" ? { ...kv, value: Array.from(kv.value as ArrayLike<unknown>) } : kv)),
  );
  assert.deepEqual(header.tensors, []);
});

test("metadata larger than the initial header buffer is written intact", () => {
  // Every value type must straddle a buffer growth, which happens at 64 KiB.
  const tokens = Array.from({ length: 20_000 }, (_, i) => `tok${i}`);
  const metadata: GgufKv[] = [
    { key: "big.tokens", type: "array", itemType: "string", value: tokens },
    { key: "big.scores", type: "array", itemType: "float32", value: tokens.map((_, i) => -i) },
    { key: "big.types", type: "array", itemType: "int32", value: tokens.map(() => 1) },
    ...allTypes,
  ];
  const header = parseGgufHeader(new GgufWriter({ metadata, tensors: [] }).toBuffer());
  assert.deepEqual(header.metadata[0]?.value, tokens);
  assert.deepEqual(
    header.metadata[1]?.value,
    tokens.map((_, i) => -i),
  );
  assert.deepEqual(
    header.metadata.slice(3).map((kv) => kv.key),
    allTypes.map((kv) => kv.key),
  );
});

test("tensor infos, offsets and padding follow the default 32-byte alignment", () => {
  const buffer = new GgufWriter(sampleSpec()).toBuffer();
  const header = parseGgufHeader(buffer);
  assert.equal(header.alignment, 32);
  assert.equal(header.dataOffset % 32, 0);
  assert.deepEqual(
    header.tensors.map(({ name, dims, ggmlType, offset }) => ({ name, dims, ggmlType, offset })),
    [
      { name: "a", dims: [3], ggmlType: 0, offset: 0 },
      { name: "b", dims: [5, 3], ggmlType: 1, offset: 32 },
      { name: "c", dims: [2, 2, 2, 2], ggmlType: 0, offset: 64 },
    ],
  );
  assert.equal(buffer.length, header.dataOffset + 128);

  const data = buffer.subarray(header.dataOffset);
  assert.deepEqual(
    [0, 1, 2].map((i) => data.readFloatLE(i * 4)),
    [1, 2, 3],
  );
  assert.ok(
    data.subarray(12, 32).every((byte) => byte === 0),
    "padding after a tensor is zero",
  );
  assert.deepEqual(
    Array.from({ length: 15 }, (_, i) => f16BitsToNumber(data.readUInt16LE(32 + i * 2))),
    Array.from({ length: 15 }, (_, i) => i / 4),
  );
  assert.equal(data.readFloatLE(64 + 60), -1);
});

test("node-llama-cpp's own parser agrees with the layout", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gguf-writer-"));
  try {
    const path = join(dir, "sample.gguf");
    const writer = new GgufWriter(sampleSpec([{ key: "general.alignment", type: "uint32", value: 64 }]));
    await writer.writeFile(path);
    assert.deepEqual(await readdir(dir), ["sample.gguf"], "no partial file is left behind");
    const info = await readGgufFileInfo(path);
    assert.equal(info.version, 3);
    assert.equal(info.metadata.general.architecture, "test");
    assert.deepEqual(
      info.tensorInfo?.map((t) => [t.name, t.dimensions, t.ggmlType, t.offset, t.fileOffset]),
      [
        ["a", [3], 0, 0, writer.dataOffset],
        ["b", [5, 3], 1, 64, writer.dataOffset + 64],
        ["c", [2, 2, 2, 2], 0, 128, writer.dataOffset + 128],
      ],
    );
    assert.equal(writer.dataOffset % 64, 0);
    assert.equal((await readFile(path)).length, writer.totalSize);
    assert.equal((await readGgufHeader(path)).alignment, 64);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("invalid specs are rejected", () => {
  const spec = sampleSpec();
  assert.throws(
    () => new GgufWriter({ ...spec, metadata: [...spec.metadata, ...spec.metadata] }),
    /duplicate GGUF metadata key/,
  );
  assert.throws(
    () => new GgufWriter({ ...spec, tensors: [...spec.tensors, spec.tensors[0]!] }),
    /duplicate GGUF tensor name/,
  );
  assert.throws(
    () => new GgufWriter(sampleSpec([{ key: "general.alignment", type: "uint32", value: 48 }])),
    /alignment/,
  );
  assert.throws(
    () => new GgufWriter(sampleSpec([{ key: "general.alignment", type: "int32", value: 32 }])),
    /alignment/,
  );
  assert.throws(() => new GgufWriter({ metadata: [{ key: "x", type: "uint8", value: 1.5 }], tensors: [] }), RangeError);
  assert.throws(() => new GgufWriter({ metadata: [{ key: "x", type: "uint8", value: 256 }], tensors: [] }), RangeError);
  assert.throws(
    () =>
      new GgufWriter({
        metadata: [],
        tensors: [{ name: "t", dims: [1, 1, 1, 1, 1], type: "F32", data: new Float32Array(1) }],
      }),
    RangeError,
  );
  assert.throws(
    () => new GgufWriter({ metadata: [], tensors: [{ name: "t", dims: [0], type: "F32", data: new Float32Array(0) }] }),
    RangeError,
  );
  const wrongLength = new GgufWriter({
    metadata: [],
    tensors: [{ name: "t", dims: [4], type: "F16", data: new Float32Array(3) }],
  });
  assert.throws(() => wrongLength.toBuffer(), /expected 4 values, got 3/);
});

test("F16 conversion of known values", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0, 0x0000],
    [-0, 0x8000],
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00],
    [1e6, 0x7c00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400],
    [2 ** -24, 0x0001],
    [1023 * 2 ** -24, 0x03ff],
    [1e-5, 0x00a8],
    [-1e-5, 0x80a8],
    // 1e-8 is below half the smallest subnormal, so it underflows to (signed) zero.
    [1e-8, 0x0000],
    [-1e-8, 0x8000],
    // Ties round to even, in the normal and the subnormal range.
    [1 + 2 ** -11, 0x3c00],
    [1 + 3 * 2 ** -11, 0x3c02],
    [2 ** -25, 0x0000],
    [3 * 2 ** -25, 0x0002],
    [2 ** -14 * (1 - 2 ** -11), 0x0400],
  ];
  for (const [value, bits] of cases)
    assert.equal(float32ToF16Bits(value).toString(16), bits.toString(16), `f16(${value})`);
  const nan = float32ToF16Bits(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x03ff, 0, "NaN must not collapse into infinity");
});

test("every F16 bit pattern survives decode → encode", () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const value = f16BitsToNumber(bits);
    if (Number.isNaN(value)) assert.ok(Number.isNaN(f16BitsToNumber(float32ToF16Bits(value))));
    else if (float32ToF16Bits(value) !== bits)
      assert.fail(`bits 0x${bits.toString(16)} re-encoded as 0x${float32ToF16Bits(value).toString(16)}`);
  }
});

test("synthetic models are deterministic and laid out as llama.cpp expects", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gguf-synthetic-"));
  try {
    const small = {
      vocabSize: 512,
      embeddingLength: 64,
      blockCount: 2,
      headCount: 4,
      headCountKv: 2,
      feedForwardLength: 96,
    };
    const paths = ["a.gguf", "b.gguf", "c.gguf", "d.gguf"].map((name) => join(dir, name));
    await writeSyntheticLlama(paths[0]!, { ...small, seed: 7 });
    await writeSyntheticLlama(paths[1]!, { ...small, seed: 7 });
    await writeSyntheticLlama(paths[2]!, { ...small, seed: 8 });
    const shape = await writeSyntheticLlama(paths[3]!);
    assert.deepEqual(shape, DEFAULT_SYNTHETIC_SHAPE);
    const [a, b, c] = await Promise.all(paths.slice(0, 3).map(async (path) => sha256(await readFile(path))));
    assert.equal(a, b);
    assert.notEqual(a, c);

    const header = await readGgufHeader(paths[0]!);
    const tensors = new Map(header.tensors.map((tensor) => [tensor.name, tensor]));
    assert.equal(tensors.size, 3 + 9 * 2);
    assert.deepEqual(tensors.get("token_embd.weight")?.dims, [64, 512]);
    assert.deepEqual(tensors.get("output.weight")?.dims, [64, 512]);
    assert.deepEqual(tensors.get("blk.1.attn_k.weight")?.dims, [64, 32]);
    assert.deepEqual(tensors.get("blk.1.ffn_up.weight")?.dims, [64, 96]);
    assert.deepEqual(tensors.get("blk.1.ffn_down.weight")?.dims, [96, 64]);
    assert.equal(tensors.get("blk.0.attn_q.weight")?.ggmlType, 1);
    assert.equal(tensors.get("blk.0.attn_norm.weight")?.ggmlType, 0, "norms stay F32 in an F16 model");
    assert.ok(header.tensors.every((tensor) => tensor.offset % header.alignment === 0));

    const kv = new Map(header.metadata.map((entry) => [entry.key, entry.value]));
    const tokens = kv.get("tokenizer.ggml.tokens") as string[];
    assert.equal(tokens.length, 512);
    assert.deepEqual(tokens.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
    assert.equal(tokens[258], "<0xFF>");
    assert.deepEqual((kv.get("tokenizer.ggml.token_type") as number[]).slice(0, 5), [2, 3, 3, 6, 6]);
    assert.equal(kv.get("llama.rope.dimension_count"), 16);
    assert.match(String(kv.get("general.description")), /random/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("quantized tensors are sized in blocks and hold exactly what the quantizer encodes", async () => {
  const q8Values = Float32Array.from({ length: 128 }, (_, i) => Math.sin(i) / 10);
  const q4Values = Float32Array.from({ length: 96 }, (_, i) => Math.cos(i) / 10);
  const spec: GgufSpec = {
    metadata: [{ key: "general.architecture", type: "string", value: "test" }],
    tensors: [
      // Chunks of whole rows, as large synthetic tensors are streamed.
      { name: "q8", dims: [64, 2], type: "Q8_0", data: () => [q8Values.subarray(0, 64), q8Values.subarray(64)] },
      { name: "q4", dims: [32, 3], type: "Q4_0", data: q4Values },
      { name: "f", dims: [2], type: "F32", data: new Float32Array([1, 2]) },
    ],
  };
  const writer = new GgufWriter(spec);
  assert.deepEqual(writer.placements, [
    { name: "q8", offset: 0, byteLength: 4 * 34 },
    { name: "q4", offset: 160, byteLength: 3 * 18 },
    { name: "f", offset: 224, byteLength: 8 },
  ]);
  const buffer = writer.toBuffer();
  const data = buffer.subarray(parseGgufHeader(buffer).dataOffset);
  assert.deepEqual(data.subarray(0, 136), Buffer.from(quantizeQ8_0(q8Values)));
  assert.deepEqual(data.subarray(160, 214), Buffer.from(quantizeQ4_0(q4Values)));

  const dir = await mkdtemp(join(tmpdir(), "gguf-writer-"));
  try {
    const path = join(dir, "quantized.gguf");
    await writer.writeFile(path);
    const info = await readGgufFileInfo(path);
    assert.deepEqual(
      info.tensorInfo?.map((t) => [t.name, t.ggmlType]),
      [
        ["q8", 8],
        ["q4", 2],
        ["f", 0],
      ],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("quantized tensors need rows of whole blocks, and streamed data must add up", () => {
  const tensor = (dims: number[], data: GgufSpec["tensors"][number]["data"]): GgufSpec => ({
    metadata: [],
    tensors: [{ name: "t", dims, type: "Q8_0", data }],
  });
  assert.throws(
    () => new GgufWriter(tensor([48, 2], new Float32Array(96))),
    /dims\[0\] to be a multiple of 32, got 48/,
  );
  assert.throws(
    () => new GgufWriter(tensor([32], () => [new Float32Array(16), new Float32Array(16)])).toBuffer(),
    /whole blocks of 32/,
  );
  assert.throws(
    () => new GgufWriter(tensor([32, 2], () => [new Float32Array(32)])).toBuffer(),
    /expected 64 values, got 32/,
  );
  assert.throws(
    () => new GgufWriter(tensor([32], () => [new Float32Array(32), new Float32Array(32)])).toBuffer(),
    /expected 32 values, got 64 or more/,
  );
});

test("the default synthetic model is byte-identical to the one earlier versions wrote", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gguf-synthetic-"));
  try {
    const path = join(dir, "default.gguf");
    await writeSyntheticLlama(path);
    assert.equal(sha256(await readFile(path)), "1ba6cacc958f54cf18f282daaa0ff8991bfef8c2291e3015fe77026f8476c1d5");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
