/**
 * `pagoda synth --type q4_k_m|q6_k`: the arguments ask for an F16 model and a llama.cpp file type, and the command
 * writes the F16 file beside the output, hands it to the quantiser it was given and cleans up after it. The real
 * quantiser is native; here a stand-in copies or fails, test/model/synth-quantized.test.ts runs llama.cpp's.
 */
import assert from "node:assert/strict";
import { copyFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { readGgufHeader } from "../../src/gguf/gguf-reader.ts";
import { parseSynthArgs, type SynthRequest } from "../../src/gguf/synth-args.ts";
import { runSynthCommand, type SynthCommandIo } from "../../src/gguf/synth-command.ts";
import type { ModelQuantizer, QuantizedSynthType } from "../../src/gguf/write-quantized-model.ts";
import { withTempDir } from "../helpers/gguf-files.ts";

function synthRequest(...argv: string[]): SynthRequest {
  const args = parseSynthArgs(argv);
  assert.equal(args.kind, "synth");
  return args.request;
}

async function runCapturing(
  argv: string[],
  quantize: ModelQuantizer | null,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: SynthCommandIo = {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  };
  const code = await runSynthCommand(argv, io, quantize);
  return { code, stdout, stderr };
}

const SMALL = ["--dim", "256", "--layers", "2", "--vocab", "512", "--ffn", "512"];

test("--type q4_k_m asks for an F16 model quantized to Q4_K_M, in any letter case", () => {
  for (const type of ["q4_k_m", "Q4_K_M"]) {
    const request = synthRequest("--type", type, "--out", "m.gguf");
    assert.equal(request.options.tensorType, "F16");
    assert.equal(request.quantizeTo, "Q4_K_M");
  }
  const q6 = synthRequest("--type", "q6_k", "--out", "m.gguf");
  assert.equal(q6.options.tensorType, "F16");
  assert.equal(q6.quantizeTo, "Q6_K");
});

test("types pagoda's writer encodes are not quantized afterwards", () => {
  for (const [type, tensorType] of [
    ["q4_0", "Q4_0"],
    ["q8_0", "Q8_0"],
    ["f16", "F16"],
    ["f32", "F32"],
  ] as const) {
    const request = synthRequest("--type", type, "--out", "m.gguf");
    assert.equal(request.options.tensorType, tensorType);
    assert.equal(request.quantizeTo, null);
  }
  assert.equal(synthRequest("--out", "m.gguf").quantizeTo, null);
});

test("a --like model quantized by llama.cpp is named after its final type, not the F16 it is written at", () => {
  assert.equal(
    synthRequest("--like", "qwen2.5-0.5b", "--type", "q6_k", "--dry-run").options.label,
    "qwen2.5-0.5b-q6_k",
  );
  assert.equal(
    synthRequest("--like", "llama-3.2-1b", "--layers", "2", "--type", "q4_k_m", "--dry-run").options.label,
    "llama-3.2-1b-l2-q4_k_m",
  );
});

test("an unknown --type is a usage error that lists the quantized types too", async () => {
  const { code, stderr } = await runCapturing(["--type", "q5_k_m", "--dry-run"], null);
  assert.equal(code, 2);
  assert.match(stderr, /--type must be one of q4_0, q8_0, f16, f32, q4_k_m, q6_k, got "q5_k_m"/);
});

test("a dry run of a quantized type reports the F16 file and leaves the final size to llama.cpp", async () => {
  const { code, stdout } = await runCapturing([...SMALL, "--type", "q6_k", "--dry-run"], () => {
    throw new Error("a dry run must not quantize");
  });
  assert.equal(code, 0);
  assert.match(stdout, /type {8}Q6_K: written at F16 \(F16, F32\), then quantized by llama\.cpp/);
  assert.match(stdout, /file size {3}known after quantization; the temporary F16 file is /);
  assert.match(stdout, /The F16 file llama\.cpp would quantize:\nTensors \(21\):/);
});

test("the quantiser gets the F16 file beside the output, and only the quantised file remains", async () => {
  await withTempDir("synth-quantized", async (dir) => {
    const out = join(dir, "model.gguf");
    const calls: { inputPath: string; outputPath: string; fileType: QuantizedSynthType; inputTypes: number[] }[] = [];
    // Stands in for llama.cpp: copies the F16 model, which is then what the report describes.
    const quantize: ModelQuantizer = async (inputPath, outputPath, fileType) => {
      const inputTypes = [...new Set((await readGgufHeader(inputPath)).tensors.map((tensor) => tensor.ggmlType))];
      calls.push({ inputPath, outputPath, fileType, inputTypes });
      await copyFile(inputPath, outputPath);
    };
    const { code, stdout, stderr } = await runCapturing([...SMALL, "--type", "q4_k_m", "--out", out], quantize);
    assert.equal(code, 0, stderr);
    assert.equal(calls.length, 1);
    const call = calls[0]!;
    assert.equal(call.fileType, "Q4_K_M");
    assert.ok(call.inputPath.startsWith(`${out}.`) && call.outputPath.startsWith(`${out}.`), "temporary siblings");
    assert.deepEqual(call.inputTypes.sort(), [0, 1], "F32 norms and F16 matrices");
    assert.deepEqual(await readdir(dir), ["model.gguf"]);
    const { size } = await stat(out);
    assert.match(stdout, new RegExp(`Wrote ${out} \\(.*${size.toLocaleString("en-US")} bytes\\)\\) in `));
    assert.match(stdout, /quantized it to Q4_K_M in [\d.]+ s\.\n {2}tensor types {2}F16 ×16, F32 ×5\n/);
  });
});

test("a failed quantisation exits 1 with llama.cpp's message and leaves no file behind", async () => {
  await withTempDir("synth-quantized", async (dir) => {
    const out = join(dir, "model.gguf");
    const quantize: ModelQuantizer = async (_inputPath, outputPath) => {
      await copyFile(join(dir, (await readdir(dir))[0]!), outputPath);
      throw new Error("llama_model_quantize failed with code 1");
    };
    const { code, stderr } = await runCapturing([...SMALL, "--type", "q6_k", "--out", out], quantize);
    assert.equal(code, 1);
    assert.match(stderr, /could not write .*model\.gguf: llama_model_quantize failed with code 1/);
    assert.deepEqual(await readdir(dir), []);
  });
});

test("a quantized type without a quantiser fails before writing anything", async () => {
  await withTempDir("synth-quantized", async (dir) => {
    const { code, stderr } = await runCapturing([...SMALL, "--type", "q4_k_m", "--out", join(dir, "m.gguf")], null);
    assert.equal(code, 1);
    assert.match(stderr, /--type q4_k_m needs llama\.cpp's quantiser, which was not provided/);
    assert.deepEqual(await readdir(dir), []);
  });
});
