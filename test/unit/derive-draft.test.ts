import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { open, readdir, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DeriveDraftError, deriveDraftModel } from "../../src/gguf/derive-draft.ts";
import { ggmlTensorBytes, ggmlTypeByName, ggmlTypeInfo } from "../../src/gguf/ggml-types.ts";
import type { GgufKv } from "../../src/gguf/gguf-kv.ts";
import { type GgufRawTensor, GgufRawWriter } from "../../src/gguf/gguf-raw-writer.ts";
import { readGgufHeader, readGgufTensorBytes, readGgufTensorChunks } from "../../src/gguf/gguf-reader.ts";
import { writeSyntheticModel } from "../../src/gguf/synthetic-model.ts";
import { byteLengthOf, metadataValue, synth, withoutKeys, withTempDir } from "../helpers/gguf-files.ts";

/** Four layers, Q4_0 weights with Q8_0 and F32 tensors among them, a vocabulary of a few hundred tokens. */
const SOURCE_SHAPE = {
  blockCount: 4,
  vocabSize: 300,
  embeddingLength: 64,
  headCount: 4,
  headCountKv: 2,
  feedForwardLength: 96,
  tensorType: "Q4_0",
  seed: 7,
} as const;

/** Checks every tensor of `out` has the bytes of the same-named tensor of `source`, and that the layout is ggml's. */
async function assertCopiedTensors(sourcePath: string, outPath: string): Promise<void> {
  const [source, out] = [await readGgufHeader(sourcePath), await readGgufHeader(outPath)];
  let end = 0;
  for (const tensor of out.tensors) {
    const original = source.tensors.find((candidate) => candidate.name === tensor.name)!;
    assert.deepEqual([tensor.dims, tensor.ggmlType], [original.dims, original.ggmlType], tensor.name);
    assert.equal(tensor.offset, end, `${tensor.name} follows the previous tensor, padded to the alignment`);
    const byteLength = byteLengthOf(tensor);
    assert.ok(
      (await readGgufTensorBytes(outPath, out, tensor, byteLength)).equals(
        await readGgufTensorBytes(sourcePath, source, original, byteLength),
      ),
      `${tensor.name} bytes`,
    );
    end = Math.ceil((tensor.offset + byteLength) / out.alignment) * out.alignment;
  }
  assert.equal(out.dataOffset % out.alignment, 0);
  assert.equal((await stat(outPath)).size, out.dataOffset + end);
}

test("a 2-layer draft of a 4-layer model keeps its metadata, non-block tensors and first two blocks byte for byte", async () => {
  await withTempDir("derive-draft", async (dir) => {
    const sourcePath = join(dir, "source.gguf");
    const outPath = join(dir, "draft.gguf");
    await writeSyntheticModel(sourcePath, SOURCE_SHAPE);
    const result = await deriveDraftModel(sourcePath, outPath, { keepLayers: 2 });

    const source = await readGgufHeader(sourcePath);
    const out = await readGgufHeader(outPath);
    assert.deepEqual(result, {
      sourceLayers: 4,
      keptLayers: 2,
      sourceBytes: (await stat(sourcePath)).size,
      outBytes: (await stat(outPath)).size,
      numTensors: out.tensors.length,
    });
    const changed = ["llama.block_count", "general.name"];
    assert.deepEqual(withoutKeys(out, changed), withoutKeys(source, changed));
    assert.deepEqual(
      out.metadata.map((kv) => kv.key),
      source.metadata.map((kv) => kv.key),
    );
    assert.equal(metadataValue(out, "llama.block_count"), 2);
    assert.equal(
      metadataValue(out, "general.name"),
      `${String(metadataValue(source, "general.name"))} (first 2 of 4 blocks)`,
    );
    assert.equal((metadataValue(out, "tokenizer.ggml.tokens") as string[]).length, 300);

    assert.deepEqual(
      out.tensors.map((tensor) => tensor.name),
      source.tensors.map((tensor) => tensor.name).filter((name) => !/^blk\.[23]\./.test(name)),
    );
    assert.ok(out.tensors.some((tensor) => tensor.name === "blk.1.ffn_down.weight"));
    assert.deepEqual(
      new Set(out.tensors.map((tensor) => ggmlTypeInfo(tensor.ggmlType).name)),
      new Set(["Q4_0", "Q8_0", "F32"]),
    );
    await assertCopiedTensors(sourcePath, outPath);
  });
});

function sampleTensor(name: string, typeName: string, dims: number[]): GgufRawTensor {
  const bytes = randomBytes(ggmlTensorBytes(ggmlTypeByName(typeName), dims));
  return { name, dims, ggmlType: ggmlTypeByName(typeName).id, byteLength: bytes.length, data: () => [bytes] };
}

function sampleMetadata(extra: GgufKv[] = []): GgufKv[] {
  return [
    { key: "general.architecture", type: "string", value: "toy" },
    { key: "general.alignment", type: "uint32", value: 64 },
    { key: "toy.block_count", type: "uint64", value: 3n },
    { key: "tokenizer.ggml.tokens", type: "array", itemType: "string", value: ["<s>", "é", "\u2581the", ""] },
    ...extra,
  ];
}

/** Types this project cannot encode (K-quants, IQ, BF16, I32), 64-byte alignment, no general.name. */
async function writeSampleSource(path: string, extraMetadata: GgufKv[] = []): Promise<void> {
  const blocks = [0, 1, 2].flatMap((block) => [
    sampleTensor(`blk.${block}.attn_q.weight`, "Q6_K", [256, 3]),
    sampleTensor(`blk.${block}.attn_norm.weight`, "BF16", [7]),
    sampleTensor(`blk.${block}.ffn_up.weight`, "IQ4_XS", [256, 2]),
  ]);
  const tensors = [
    sampleTensor("token_embd.weight", "Q5_K", [256, 4]),
    ...blocks,
    sampleTensor("rope_freqs.weight", "F32", [5]),
    sampleTensor("output.weight", "IQ2_XXS", [256, 4]),
    sampleTensor("toy.positions", "I32", [3, 1, 2]),
  ];
  await new GgufRawWriter({ metadata: sampleMetadata(extraMetadata), tensors }).writeFile(path);
}

test("tensors of any ggml type are copied raw, with the source's alignment and a uint64 block count kept uint64", async () => {
  await withTempDir("derive-draft", async (dir) => {
    const sourcePath = join(dir, "toy-model.gguf");
    const outPath = join(dir, "draft.gguf");
    await writeSampleSource(sourcePath);
    const progress: [number, number][] = [];
    const result = await deriveDraftModel(sourcePath, outPath, {
      keepLayers: 1,
      onProgress: (written, total) => void progress.push([written, total]),
    });

    const out = await readGgufHeader(outPath);
    assert.equal(out.alignment, 64);
    assert.deepEqual(
      out.tensors.map((tensor) => tensor.name),
      [
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.0.attn_norm.weight",
        "blk.0.ffn_up.weight",
        "rope_freqs.weight",
        "output.weight",
        "toy.positions",
      ],
    );
    assert.equal(result.numTensors, 7);
    assert.equal(metadataValue(out, "toy.block_count"), 1n);
    // Without a general.name in the source, the draft is named after the file.
    assert.equal(metadataValue(out, "general.name"), "toy-model (first 1 of 3 blocks)");
    await assertCopiedTensors(sourcePath, outPath);
    assert.deepEqual(progress.at(-1), [result.outBytes, result.outBytes]);
  });
});

test("the raw writer rewrites a file from its own tensor bytes identically to the writer that encoded it", async () => {
  await withTempDir("derive-draft", async (dir) => {
    const sourcePath = join(dir, "source.gguf");
    const copyPath = join(dir, "copy.gguf");
    await writeSyntheticModel(sourcePath, SOURCE_SHAPE);
    const source = await readGgufHeader(sourcePath);
    const handle = await open(sourcePath, "r");
    try {
      const tensors = source.tensors.map(
        (tensor): GgufRawTensor => ({
          name: tensor.name,
          dims: tensor.dims,
          ggmlType: tensor.ggmlType,
          byteLength: byteLengthOf(tensor),
          // Odd-sized chunks: the writer must not care where the chunks break.
          data: () => readGgufTensorChunks(handle, source, tensor, byteLengthOf(tensor), 37),
        }),
      );
      await new GgufRawWriter({ metadata: source.metadata, tensors }).writeFile(copyPath);
    } finally {
      await handle.close();
    }
    assert.ok((await readFile(copyPath)).equals(await readFile(sourcePath)));
  });
});

test("the raw writer rejects tensor data shorter or longer than the declared byte length", async () => {
  const metadata = sampleMetadata();
  const tensor = (chunks: Buffer[]): GgufRawTensor => ({
    name: "t",
    dims: [4],
    ggmlType: 0,
    byteLength: 16,
    data: () => chunks,
  });
  assert.throws(
    () => new GgufRawWriter({ metadata, tensors: [tensor([]), tensor([])] }),
    /duplicate GGUF tensor name: t/,
  );
  for (const chunks of [[Buffer.alloc(12)], [Buffer.alloc(8), Buffer.alloc(12)]]) {
    const writer = new GgufRawWriter({ metadata, tensors: [tensor(chunks)] });
    await assert.rejects(async () => {
      for await (const chunk of writer.chunks()) void chunk;
    }, /tensor t: expected 16 bytes, got (12|20 or more)/);
  }
});

test("keepLayers outside 1..block_count is rejected and nothing is written", async () => {
  await withTempDir("derive-draft", async (dir) => {
    const sourcePath = join(dir, "source.gguf");
    await writeSampleSource(sourcePath);
    for (const keepLayers of [0, 4, 1.5, Number.NaN])
      await assert.rejects(
        deriveDraftModel(sourcePath, join(dir, "draft.gguf"), { keepLayers }),
        (error: Error) => error instanceof RangeError && /from 1 to 3/.test(error.message),
      );
    await assert.rejects(deriveDraftModel(sourcePath, sourcePath, { keepLayers: 1 }), /cannot overwrite its source/);
    assert.deepEqual(await readdir(dir), ["source.gguf"]);
  });
});

test("per-layer metadata arrays, truncated files and metadata that would not copy exactly are refused", async () => {
  await withTempDir("derive-draft", async (dir) => {
    const out = join(dir, "draft.gguf");
    const perLayer = join(dir, "per-layer.gguf");
    await writeSampleSource(perLayer, [
      { key: "toy.attention.head_count", type: "array", itemType: "int32", value: [4, 4, 8] },
    ]);
    await assert.rejects(
      deriveDraftModel(perLayer, out, { keepLayers: 1 }),
      (error: Error) =>
        error instanceof DeriveDraftError &&
        error.code === "PAGODA_ERR_DERIVE_DRAFT" &&
        /per-layer metadata arrays are not supported: toy\.attention\.head_count/.test(error.message),
    );

    const truncated = join(dir, "truncated.gguf");
    await writeSampleSource(truncated);
    await truncate(truncated, (await stat(truncated)).size - 100);
    await assert.rejects(
      deriveDraftModel(truncated, out, { keepLayers: 1 }),
      /toy\.positions runs past the end of the file/,
    );

    // "é" is C3 A9 in UTF-8; C3 41 is not UTF-8, so reading and writing it back would change the bytes.
    const invalid = join(dir, "invalid-utf8.gguf");
    await writeSampleSource(invalid);
    const bytes = await readFile(invalid);
    bytes[bytes.indexOf(Buffer.from("é")) + 1] = 0x41;
    await writeFile(invalid, bytes);
    await assert.rejects(deriveDraftModel(invalid, out, { keepLayers: 1 }), /does not re-encode byte for byte/);
    assert.ok(!(await readdir(dir)).some((name) => name.startsWith("draft.gguf")));
  });
});

test("pagoda synth --derive-from writes the draft and says it shares the source's tokenizer", async () => {
  await withTempDir("derive-draft", async (dir) => {
    const sourcePath = join(dir, "source.gguf");
    const outPath = join(dir, "draft.gguf");
    await writeSyntheticModel(sourcePath, SOURCE_SHAPE);
    const { code, stdout, stderr } = await synth("--derive-from", sourcePath, "--keep-layers", "3", "--out", outPath);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^Wrote .*draft\.gguf: the first 3 of 4 transformer blocks of .*source\.gguf, \d+ tensors, /);
    assert.match(stdout, /shares the source's tokenizer and vocabulary/);
    assert.equal(metadataValue(await readGgufHeader(outPath), "llama.block_count"), 3);
  });
});

test("pagoda synth --derive-from rejects synthetic-model flags, a missing layer count and an unreadable source", async () => {
  const usage: [string[], RegExp][] = [
    [["--derive-from", "m.gguf", "--keep-layers", "2"], /--out <draft\.gguf> is required/],
    [["--derive-from", "m.gguf", "--out", "d.gguf"], /needs --keep-layers N/],
    [["--keep-layers", "2", "--out", "d.gguf"], /--keep-layers needs --derive-from/],
    [
      ["--derive-from", "m.gguf", "--keep-layers", "0", "--out", "d.gguf"],
      /--keep-layers must be an integer of at least 1/,
    ],
    [
      ["--derive-from", "m.gguf", "--layers", "2", "--type", "f16", "--out", "d.gguf"],
      /cannot be combined with --type, --layers \(use --keep-layers\)/,
    ],
  ];
  for (const [argv, message] of usage) {
    const { code, stderr } = await synth(...argv);
    assert.equal(code, 2, argv.join(" "));
    assert.match(stderr, message);
    assert.match(stderr, /Usage:/);
  }
  const { code, stderr } = await synth(
    "--derive-from",
    join(tmpdir(), "pagoda-no-such-model.gguf"),
    "--keep-layers",
    "2",
    "--out",
    "d.gguf",
  );
  assert.equal(code, 1);
  assert.match(stderr, /could not derive a draft from .*pagoda-no-such-model\.gguf: ENOENT/);
});
