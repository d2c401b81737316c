import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { registeredLocalBuild } from "../../tools/addon-local-build.ts";
import {
  checkoutFromBundle,
  installSourceRelease,
  llamaCppPatches,
  sourceLinkFlags,
  x64VariantTarget,
} from "../../tools/llama-source-build.ts";
import { withTempDir } from "../helpers/gguf-files.ts";

test("a source build's release holds the addon and every library name of the build as real files, and nothing else", async () => {
  await withTempDir("source-release", async (dir) => {
    const libDir = path.join(dir, "bin");
    mkdirSync(libDir);
    writeFileSync(path.join(libDir, "libllama.so.0.4.0"), "llama");
    symlinkSync("libllama.so.0.4.0", path.join(libDir, "libllama.so.0"));
    symlinkSync("libllama.so.0", path.join(libDir, "libllama.so"));
    writeFileSync(path.join(libDir, "libggml-cpu.so"), "cpu");
    writeFileSync(path.join(libDir, "cmake_install.cmake"), "not a library");
    const addon = path.join(dir, "native.node");
    writeFileSync(addon, "addon");
    const release = path.join(dir, "Release");
    mkdirSync(release);
    writeFileSync(path.join(release, "stale.so"), "from an earlier build");

    installSourceRelease(addon, libDir, release);

    assert.deepEqual(readdirSync(release).sort(), [
      "libggml-cpu.so",
      "libllama.so",
      "libllama.so.0",
      "libllama.so.0.4.0",
      "llama-addon.node",
    ]);
    for (const file of readdirSync(release)) assert.ok(lstatSync(path.join(release, file)).isFile(), file);
    assert.equal(readFileSync(path.join(release, "libllama.so"), "utf8"), "llama");
    assert.equal(readFileSync(path.join(release, "llama-addon.node"), "utf8"), "addon");
  });
});

test("the addon links against the four libraries it calls, found beside it at run time", () => {
  assert.deepEqual(sourceLinkFlags("/b/bin"), [
    "-L/b/bin",
    "-lllama",
    "-lllama-common",
    "-lggml",
    "-lggml-base",
    "-Wl,-rpath,$ORIGIN",
  ]);
});

test("the registration marker tells the build for the current addon stamp only", async () => {
  await withTempDir("local-build-marker", async (packageDir) => {
    const dir = path.join(packageDir, "llama", "localBuilds", `${process.platform}-${process.arch}`);
    assert.equal(registeredLocalBuild(packageDir, "abc"), null, "no folder");
    mkdirSync(dir, { recursive: true });
    assert.equal(registeredLocalBuild(packageDir, "abc"), null, "a folder without pagoda's marker");
    writeFileSync(path.join(dir, "pagoda-local-build"), "abc source:zen4\n");
    assert.equal(registeredLocalBuild(packageDir, "abc"), "source:zen4");
    writeFileSync(path.join(dir, "pagoda-local-build"), "abc native\n");
    assert.equal(registeredLocalBuild(packageDir, "abc"), "source:native", "an earlier marker, before targets");
    assert.equal(registeredLocalBuild(packageDir, "def"), null, "another addon stamp");
    writeFileSync(path.join(dir, "pagoda-local-build"), "abc prebuilt\n");
    assert.equal(registeredLocalBuild(packageDir, "abc"), "prebuilt");
    writeFileSync(path.join(dir, "pagoda-local-build"), "abc\n");
    assert.equal(registeredLocalBuild(packageDir, "abc"), "prebuilt", "an earlier marker, before native builds");
  });
});

/** /proc/cpuinfo flags of the instruction sets ggml tells apart, as real CPUs report them. */
const HASWELL = ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"];
const AVX512 = ["avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"];
const EPYC_9004 = [...HASWELL, ...AVX512, "avx512vbmi", "avx512_vnni", "avx512_bf16", "avx_vnni", "avx512ifma"];

function targetOf(flags: readonly string[]): { name: string; on: string[] } {
  const target = x64VariantTarget(new Set(["fpu", "sse2", ...flags]));
  const on = target.cmakeOptions.filter((option) => option.endsWith("=ON")).map((option) => option.slice(2, -3));
  assert.equal(target.cmakeOptions[0], "-DGGML_NATIVE=OFF");
  assert.equal(target.cmakeOptions.length, 14, "every instruction-set option is set, on or off");
  return { name: target.name, on: on.sort() };
}

test("a CPU's source build targets the ggml variant it loads from the prebuilt set, with exactly its instruction sets", () => {
  assert.deepEqual(targetOf(EPYC_9004), {
    name: "zen4",
    on: [
      "GGML_AVX",
      "GGML_AVX2",
      "GGML_AVX512",
      "GGML_AVX512_BF16",
      "GGML_AVX512_VBMI",
      "GGML_AVX512_VNNI",
      "GGML_BMI2",
      "GGML_F16C",
      "GGML_FMA",
      "GGML_SSE42",
    ],
  });
  assert.equal(targetOf(HASWELL).name, "haswell");
  assert.equal(targetOf([...HASWELL, "avx_vnni"]).name, "alderlake");
  assert.equal(targetOf([...HASWELL, ...AVX512]).name, "skylakex");
  assert.equal(targetOf([...HASWELL, ...AVX512, "avx512_vnni"]).name, "cascadelake");
  const sapphire = [...EPYC_9004, "amx_tile", "amx_int8"];
  assert.equal(targetOf(sapphire).name, "sapphirerapids");
  assert.ok(targetOf(sapphire).on.includes("GGML_AMX_INT8"));
  assert.equal(targetOf(["sse4_2", "avx"]).name, "sandybridge");
  assert.deepEqual(targetOf([]), { name: "x64", on: [] });
});

test("AVX-512 counts only with all five subsets ggml checks at load time", () => {
  const withoutBw = [...HASWELL, "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512vbmi", "avx512_vnni"];
  assert.equal(targetOf(withoutBw).name, "haswell");
});

test("the llama.cpp patches apply to the release node-llama-cpp ships, each to a file of it", async () => {
  const bundle = path.resolve("node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");
  const patches = llamaCppPatches(path.resolve("patches"));
  assert.ok(patches.length > 0);
  await withTempDir("llama-patches", async (dir) => {
    for (const patch of patches) {
      const text = readFileSync(patch, "utf8");
      const files = [...text.matchAll(/^\+\+\+ b\/(\S+)$/gm)].map((match) => match[1] as string);
      assert.ok(files.length > 0, patch);
      const tree = path.join(dir, path.basename(patch));
      checkoutFromBundle(bundle, `${tree}.git`, tree, files);
      execFileSync("git", ["apply", "--check", patch], { cwd: tree });
    }
  });
});
