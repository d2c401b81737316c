import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { f16BitsToNumber } from "../../src/gguf/float16.ts";
import { type GgufHeader, readGgufHeader, readGgufTensorBytes } from "../../src/gguf/gguf-reader.ts";
import { runSynthCommand } from "../../src/gguf/synth-command.ts";
import { writeSyntheticLlama, writeSyntheticModel } from "../../src/gguf/synthetic-model.ts";
import { WidenFeedForwardError, widenFeedForward } from "../../src/gguf/widen-ffn.ts";
import { byteLengthOf, metadataValue, withoutKeys, withTempDir } from "../helpers/gguf-files.ts";

const SHAPE = {
  blockCount: 2,
  vocabSize: 300,
  embeddingLength: 64,
  headCount: 4,
  headCountKv: 2,
  feedForwardLength: 96,
  seed: 3,
};
const WIDE = 256;
const CHANGED_KEYS = ["llama.feed_forward_length", "general.name"];
const FFN = /^blk\.\d+\.ffn_(gate|up|down)\.weight$/;

async function bytesOf(path: string, header: GgufHeader, name: string): Promise<Buffer> {
  const tensor = header.tensors.find((candidate) => candidate.name === name)!;
  return readGgufTensorBytes(path, header, tensor, byteLengthOf(tensor));
}

function decode(bytes: Buffer, ggmlType: number): number[] {
  const values: number[] = [];
  for (let offset = 0; offset < bytes.length; offset += ggmlType === 1 ? 2 : 4)
    values.push(ggmlType === 1 ? f16BitsToNumber(bytes.readUInt16LE(offset)) : bytes.readFloatLE(offset));
  return values;
}

function rms(values: readonly number[]): number {
  return Math.sqrt(values.reduce((sum, value) => sum + value * value, 0) / values.length);
}

/** The extra part of a widened tensor: rows after the source's (gate/up) or columns after the source's (down). */
function extraPart(
  values: readonly number[],
  kind: string,
  rowLength: number,
  sourceRowLength: number,
  sourceRows: number,
): number[] {
  if (kind !== "down") return values.slice(sourceRows * rowLength);
  const extra: number[] = [];
  for (let start = 0; start < values.length; start += rowLength)
    extra.push(...values.slice(start + sourceRowLength, start + rowLength));
  return extra;
}

/**
 * Checks the widened file: its layout is ggml's, unwidened tensors are byte-identical, widened ones hold the source
 * bytes in their leading rows or columns; returns the RMS of each widened tensor's extra part over its source's.
 */
async function checkWidened(sourcePath: string, outPath: string): Promise<Map<string, number>> {
  const [source, out] = [await readGgufHeader(sourcePath), await readGgufHeader(outPath)];
  assert.deepEqual(
    out.tensors.map((tensor) => [tensor.name, tensor.ggmlType]),
    source.tensors.map((tensor) => [tensor.name, tensor.ggmlType]),
  );
  const ratios = new Map<string, number>();
  let end = 0;
  for (const tensor of out.tensors) {
    const original = source.tensors.find((candidate) => candidate.name === tensor.name)!;
    assert.equal(tensor.offset, end, `${tensor.name} follows the previous tensor, padded to the alignment`);
    end = Math.ceil((tensor.offset + byteLengthOf(tensor)) / out.alignment) * out.alignment;
    const [outBytes, sourceBytes] = [
      await bytesOf(outPath, out, tensor.name),
      await bytesOf(sourcePath, source, tensor.name),
    ];
    const kind = FFN.exec(tensor.name)?.[1];
    if (kind === undefined) {
      assert.deepEqual(tensor.dims, original.dims, tensor.name);
      assert.ok(outBytes.equals(sourceBytes), `${tensor.name} is copied byte for byte`);
      continue;
    }
    const [ne0, ne1] = original.dims as [number, number];
    assert.deepEqual(tensor.dims, kind === "down" ? [WIDE, ne1] : [ne0, WIDE], `${tensor.name} shape`);
    const sourceRowBytes = sourceBytes.length / ne1;
    const rowBytes = outBytes.length / tensor.dims[1]!;
    for (let row = 0; row < ne1; row++)
      assert.ok(
        outBytes
          .subarray(row * rowBytes, row * rowBytes + sourceRowBytes)
          .equals(sourceBytes.subarray(row * sourceRowBytes, (row + 1) * sourceRowBytes)),
        `${tensor.name} row ${row}`,
      );
    const extra = extraPart(decode(outBytes, tensor.ggmlType), kind, tensor.dims[0]!, ne0, ne1);
    assert.equal(extra.length, (WIDE - SHAPE.feedForwardLength) * SHAPE.embeddingLength);
    ratios.set(tensor.name, rms(extra) / rms(decode(sourceBytes, tensor.ggmlType)));
  }
  assert.equal(out.dataOffset % out.alignment, 0);
  assert.equal((await stat(outPath)).size, out.dataOffset + end);
  return ratios;
}

for (const tensorType of ["F32", "F16"] as const) {
  test(
    `an ${tensorType} model widened keeps its metadata but two keys, its other tensors byte for byte and its FFN ` +
      "values in the leading rows or columns",
    async () => {
      await withTempDir("widen-ffn", async (dir) => {
        const sourcePath = join(dir, "source.gguf");
        const outPath = join(dir, "wide.gguf");
        await writeSyntheticLlama(sourcePath, { ...SHAPE, tensorType });
        const result = await widenFeedForward(sourcePath, outPath, {
          feedForwardLength: WIDE,
          perturbation: 0.05,
          seed: 9,
        });

        const [source, out] = [await readGgufHeader(sourcePath), await readGgufHeader(outPath)];
        assert.deepEqual(result, {
          sourceFeedForward: 96,
          feedForwardLength: WIDE,
          sourceBytes: (await stat(sourcePath)).size,
          outBytes: (await stat(outPath)).size,
        });
        assert.deepEqual(withoutKeys(out, CHANGED_KEYS), withoutKeys(source, CHANGED_KEYS));
        assert.deepEqual(
          out.metadata.map((kv) => kv.key),
          source.metadata.map((kv) => kv.key),
        );
        assert.equal(metadataValue(out, "llama.feed_forward_length"), WIDE);
        assert.equal(
          metadataValue(out, "general.name"),
          `${String(metadataValue(source, "general.name"))} (feed-forward widened to ${WIDE}, perturbation 0.05)`,
        );

        const ratios = await checkWidened(sourcePath, outPath);
        assert.equal(ratios.size, 3 * SHAPE.blockCount);
        for (const [name, ratio] of ratios) {
          const expected = name.endsWith("ffn_down.weight") ? 0.05 : 1;
          assert.ok(
            Math.abs(ratio / expected - 1) < 0.1,
            `${name}: extra RMS / source RMS = ${ratio}, expected ${expected}`,
          );
        }
      });
    },
  );
}

test("a perturbation of 0 makes the extra down columns exact zeros, and the seed alone decides the extra values", async () => {
  await withTempDir("widen-ffn", async (dir) => {
    const sourcePath = join(dir, "source.gguf");
    await writeSyntheticLlama(sourcePath, { ...SHAPE, tensorType: "F32" });
    const paths = ["zero", "seed1", "seed1-again", "seed2"].map((name) => join(dir, `${name}.gguf`));
    await widenFeedForward(sourcePath, paths[0]!, { feedForwardLength: WIDE, perturbation: 0 });
    await widenFeedForward(sourcePath, paths[1]!, { feedForwardLength: WIDE, seed: 1 });
    await widenFeedForward(sourcePath, paths[2]!, { feedForwardLength: WIDE, seed: 1 });
    await widenFeedForward(sourcePath, paths[3]!, { feedForwardLength: WIDE, seed: 2 });

    const ratios = await checkWidened(sourcePath, paths[0]!);
    const out = await readGgufHeader(paths[0]!);
    const down = decode(await bytesOf(paths[0]!, out, "blk.1.ffn_down.weight"), 0);
    const extra = extraPart(down, "down", WIDE, SHAPE.feedForwardLength, SHAPE.embeddingLength);
    assert.ok(
      extra.every((value) => Object.is(value, 0)),
      "every extra down value is +0",
    );
    assert.equal(ratios.get("blk.0.ffn_down.weight"), 0);
    assert.ok(Math.abs(ratios.get("blk.0.ffn_up.weight")! - 1) < 0.1);
    assert.equal(
      metadataValue(out, "general.name"),
      `${String(metadataValue(await readGgufHeader(sourcePath), "general.name"))} ` +
        `(feed-forward widened to ${WIDE}, perturbation 0)`,
    );

    const [seed1, again, seed2] = await Promise.all(paths.slice(1).map((path) => readFile(path)));
    assert.ok(seed1!.equals(again!), "the same seed writes the same file");
    assert.ok(!seed1!.equals(seed2!), "another seed writes other extra values");
  });
});

test("quantized FFN matrices, a feed-forward no wider than the source's and overwriting the source are refused", async () => {
  await withTempDir("widen-ffn", async (dir) => {
    const quantizedPath = join(dir, "q4.gguf");
    await writeSyntheticModel(quantizedPath, { ...SHAPE, tensorType: "Q4_0" });
    await assert.rejects(
      widenFeedForward(quantizedPath, join(dir, "out.gguf"), { feedForwardLength: WIDE }),
      (error: Error) => error instanceof WidenFeedForwardError && /is Q4_0; only F32 and F16/.test(error.message),
    );
    const sourcePath = join(dir, "source.gguf");
    await writeSyntheticLlama(sourcePath, { ...SHAPE, tensorType: "F16" });
    await assert.rejects(
      widenFeedForward(sourcePath, join(dir, "out.gguf"), { feedForwardLength: 96 }),
      (error: Error) => error instanceof RangeError && /above 96/.test(error.message),
    );
    await assert.rejects(
      widenFeedForward(sourcePath, join(dir, "out.gguf"), { feedForwardLength: WIDE, perturbation: -1 }),
      RangeError,
    );
    await assert.rejects(widenFeedForward(sourcePath, sourcePath, { feedForwardLength: WIDE }), WidenFeedForwardError);
  });
});

test("pagoda synth --widen-from writes the target and says its output is the source's plus a perturbation", async () => {
  await withTempDir("widen-ffn", async (dir) => {
    const sourcePath = join(dir, "source.gguf");
    const outPath = join(dir, "wide.gguf");
    await writeSyntheticLlama(sourcePath, { ...SHAPE, tensorType: "F32" });
    const output = { stdout: "", stderr: "" };
    const io = {
      stdout: (text: string) => {
        output.stdout += text;
      },
      stderr: (text: string) => {
        output.stderr += text;
      },
    };
    const code = await runSynthCommand(
      ["--widen-from", sourcePath, "--ffn", String(WIDE), "--perturbation", "0.05", "--seed", "9", "--out", outPath],
      io,
    );
    assert.equal(code, 0, output.stderr);
    assert.match(output.stdout, new RegExp(`widened from 96 to ${WIDE} hidden units`));
    assert.match(output.stdout, /output is the source model's plus a perturbation \(scale 0\.05, seed 9\)/);
    const direct = join(dir, "direct.gguf");
    await widenFeedForward(sourcePath, direct, { feedForwardLength: WIDE, perturbation: 0.05, seed: 9 });
    assert.ok((await readFile(outPath)).equals(await readFile(direct)));

    for (const argv of [
      ["--widen-from", sourcePath, "--out", outPath],
      ["--widen-from", sourcePath, "--ffn", "300", "--layers", "2", "--out", outPath],
      ["--widen-from", sourcePath, "--ffn", "300", "--perturbation", "-0.1", "--out", outPath],
      ["--perturbation", "0.1", "--ffn", "300", "--out", outPath],
    ])
      assert.equal(await runSynthCommand(argv, io), 2, argv.join(" "));
    assert.equal(
      await runSynthCommand(["--widen-from", sourcePath, "--ffn", "50", "--out", join(dir, "x.gguf")], io),
      1,
    );
    assert.match(output.stderr, /could not widen .*above 96/);
  });
});
