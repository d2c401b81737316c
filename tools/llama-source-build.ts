/**
 * llama.cpp compiled on this machine from the source node-llama-cpp ships, with the patched addon linked against it
 * and registered as node-llama-cpp's local build. The install step does this by default on x86-64 Linux
 * (tools/build-addon.ts; `PAGODA_LLAMA_BUILD=prebuilt` keeps node-llama-cpp's prebuilt libraries instead).
 *
 * Why: node-llama-cpp's prebuilt CPU backend ran encoders (embedding and rerank models) at half the rate of the same
 * llama.cpp compiled here, for the same instruction sets (bench/RESULTS.md, "llama.cpp compiled at install"); how
 * it was compiled, not for which CPUs, makes the difference. Generation decodes were level.
 *
 * What it is compiled for, the target:
 * - by default the ggml CPU variant this CPU would load from the prebuilt set (`zen4` on an EPYC 9004, `haswell`
 *   on an older Xeon): the same instruction sets, so the build runs on every CPU that variant runs on;
 * - `native` (`--native`): `-march=native`, this CPU only.
 *
 * Only the CPU build is made; a GPU machine keeps the prebuilt CUDA or Vulkan backends, which getLlama prefers.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** The libraries the addon links against, by the CMake target's output name. */
const LIBRARIES = ["llama", "llama-common", "ggml", "ggml-base"];

/** What llama.cpp's CPU backend is compiled for. */
export interface CpuTarget {
  /** `native`, or the name of the ggml CPU variant whose instruction sets it uses (e.g. `zen4`) */
  readonly name: string;
  readonly cmakeOptions: readonly string[];
}

export const NATIVE_TARGET: CpuTarget = { name: "native", cmakeOptions: ["-DGGML_NATIVE=ON"] };

/** ggml's x86-64 instruction-set options, as GGML_<name>. */
type X64Feature =
  | "SSE42"
  | "AVX"
  | "F16C"
  | "FMA"
  | "AVX2"
  | "BMI2"
  | "AVX_VNNI"
  | "AVX512"
  | "AVX512_VBMI"
  | "AVX512_VNNI"
  | "AVX512_BF16"
  | "AMX_TILE"
  | "AMX_INT8";

/**
 * Per option: the /proc/cpuinfo flags it needs and its weight in ggml's choice of a variant at load time
 * (`ggml_backend_cpu_x86_score` in ggml-cpu/arch/x86/cpu-feats.cpp, which also checks the five AVX-512 subsets).
 */
const X64_FEATURES: Readonly<Record<X64Feature, { readonly flags: readonly string[]; readonly score: number }>> = {
  FMA: { flags: ["fma"], score: 1 },
  F16C: { flags: ["f16c"], score: 1 << 1 },
  SSE42: { flags: ["sse4_2"], score: 1 << 2 },
  BMI2: { flags: ["bmi2"], score: 1 << 3 },
  AVX: { flags: ["avx"], score: 1 << 4 },
  AVX2: { flags: ["avx2"], score: 1 << 5 },
  AVX_VNNI: { flags: ["avx_vnni"], score: 1 << 6 },
  AVX512: { flags: ["avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"], score: 1 << 7 },
  AVX512_VBMI: { flags: ["avx512vbmi"], score: 1 << 8 },
  AVX512_BF16: { flags: ["avx512_bf16"], score: 1 << 9 },
  AVX512_VNNI: { flags: ["avx512_vnni"], score: 1 << 10 },
  AMX_TILE: { flags: ["amx_tile"], score: 0 },
  AMX_INT8: { flags: ["amx_int8"], score: 1 << 11 },
};

/** ggml's x86-64 CPU variants (`GGML_CPU_ALL_VARIANTS` in ggml/src/CMakeLists.txt), the set node-llama-cpp ships. */
const X64_VARIANTS: ReadonlyArray<readonly [string, readonly X64Feature[]]> = [
  ["x64", []],
  ["sse42", ["SSE42"]],
  ["sandybridge", ["SSE42", "AVX"]],
  ["ivybridge", ["SSE42", "AVX", "F16C"]],
  ["piledriver", ["SSE42", "AVX", "F16C", "FMA"]],
  ["haswell", ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"]],
  ["skylakex", ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512"]],
  ["cannonlake", ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI"]],
  ["cascadelake", ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI"]],
  ["icelake", ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI"]],
  ["cooperlake", ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI", "AVX512_BF16"]],
  ["zen4", ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"]],
  ["alderlake", ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX_VNNI"]],
  [
    "sapphirerapids",
    [
      "SSE42",
      "AVX",
      "F16C",
      "FMA",
      "AVX2",
      "BMI2",
      "AVX512",
      "AVX512_VBMI",
      "AVX512_VNNI",
      "AVX512_BF16",
      "AMX_TILE",
      "AMX_INT8",
    ],
  ],
];

/**
 * The ggml variant an x86-64 CPU with these /proc/cpuinfo `flags` loads from the prebuilt set (the supported one
 * ggml scores highest), as CMake options that switch on exactly its instruction sets.
 */
export function x64VariantTarget(flags: ReadonlySet<string>): CpuTarget {
  const supports = (feature: X64Feature): boolean => X64_FEATURES[feature].flags.every((flag) => flags.has(flag));
  const score = (features: readonly X64Feature[]): number =>
    features.reduce((sum, feature) => sum + X64_FEATURES[feature].score, 0);
  let best: readonly [string, readonly X64Feature[]] = ["x64", []];
  for (const variant of X64_VARIANTS) {
    if (variant[1].every(supports) && score(variant[1]) > score(best[1])) best = variant;
  }
  const [name, features] = best;
  const options = (Object.keys(X64_FEATURES) as X64Feature[]).map(
    (feature) => `-DGGML_${feature}=${features.includes(feature) ? "ON" : "OFF"}`,
  );
  return { name, cmakeOptions: ["-DGGML_NATIVE=OFF", ...options] };
}

/** This machine's default target, or null where no source build is made (not x86-64 Linux: the prebuilt stays). */
export function defaultCpuTarget(): CpuTarget | null {
  if (process.platform !== "linux" || process.arch !== "x64") return null;
  const line = readFileSync("/proc/cpuinfo", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("flags"));
  if (line === undefined) return null;
  return x64VariantTarget(
    new Set(
      line
        .slice(line.indexOf(":") + 1)
        .trim()
        .split(/\s+/),
    ),
  );
}

export interface SourceBuildOptions {
  /** A full checkout of the llama.cpp release node-llama-cpp ships (`checkoutLlamaCpp`). */
  readonly sourceDir: string;
  readonly buildDir: string;
  readonly target: CpuTarget;
  readonly log: (message: string) => void;
}

/**
 * Checks `paths` of the llama.cpp release in node-llama-cpp's git bundle out into `tree`, through a bare repository
 * at `gitDir` (offline: the bundle is in the npm package).
 */
export function checkoutFromBundle(bundle: string, gitDir: string, tree: string, paths: readonly string[]): void {
  const git = (...args: string[]): void => {
    execFileSync("git", ["--git-dir", gitDir, ...args], { stdio: ["ignore", "ignore", "inherit"] });
  };
  execFileSync("git", ["init", "--quiet", "--bare", gitDir]);
  git("fetch", "--quiet", bundle, "HEAD");
  mkdirSync(tree, { recursive: true });
  git("--work-tree", tree, "checkout", "FETCH_HEAD", "--", ...paths);
}

/**
 * The patches to llama.cpp in `patchDir` (`llama.cpp-<commit>-<what>.patch`, for the release node-llama-cpp ships), in
 * the order they apply.
 */
export function llamaCppPatches(patchDir: string): string[] {
  return readdirSync(patchDir)
    .filter((file) => file.startsWith("llama.cpp-") && file.endsWith(".patch"))
    .sort()
    .map((file) => path.join(patchDir, file));
}

/** A full checkout of the llama.cpp release in node-llama-cpp's git bundle, made once into `dir`. */
export function checkoutLlamaCpp(bundle: string, dir: string, patches: readonly string[]): string {
  const tree = path.join(dir, "src");
  // Which patches the tree has: another set means a fresh checkout (and so a full compile), never a tree patched twice.
  const appliedFile = path.join(dir, "patches.sha256");
  const applied = createHash("sha256");
  for (const patch of patches) applied.update(readFileSync(patch));
  const digest = applied.digest("hex");
  const isCurrent = existsSync(appliedFile) && readFileSync(appliedFile, "utf8").trim() === digest;
  if (existsSync(path.join(tree, "CMakeLists.txt")) && isCurrent) return tree;
  const gitDir = path.join(dir, "llama.cpp.git");
  rmSync(tree, { recursive: true, force: true });
  checkoutFromBundle(bundle, gitDir, tree, ["."]);
  rmSync(gitDir, { recursive: true, force: true });
  for (const patch of patches) {
    execFileSync("git", ["apply", "--whitespace=nowarn", patch], { cwd: tree, stdio: ["ignore", "pipe", "pipe"] });
  }
  writeFileSync(appliedFile, `${digest}\n`);
  return tree;
}

/** Configures and builds llama.cpp's shared libraries for `target`; returns the folder holding them. */
export function buildLlamaLibraries(options: SourceBuildOptions): string {
  const { sourceDir, buildDir, target, log } = options;
  const configure = [
    "-S",
    sourceDir,
    "-B",
    buildDir,
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    ...target.cmakeOptions,
    // ggml's own thread pool, as node-llama-cpp's prebuilt CPU variants: with OpenMP, a two-thread decode of the
    // qwen2.5-0.5b shape (Q8_0) took 6% longer per token (bench/RESULTS.md, "llama.cpp compiled at install").
    "-DGGML_OPENMP=OFF",
    // Found beside each other at run time, wherever node_modules is.
    "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
    "-DCMAKE_INSTALL_RPATH=$ORIGIN",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
  ];
  log(`configuring llama.cpp for the ${target.name} CPU target`);
  cmake(configure);
  log(`building llama.cpp's libraries on ${os.availableParallelism()} cores (about 6 minutes on two, the first time)`);
  cmake([
    "--build",
    buildDir,
    "--config",
    "Release",
    "-j",
    String(os.availableParallelism()),
    "--target",
    ...LIBRARIES,
  ]);
  return path.join(buildDir, "bin");
}

/** Runs CMake quietly (the compilers warn by the thousand); a failure throws with the end of its output. */
function cmake(args: readonly string[]): void {
  try {
    execFileSync("cmake", args, { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 28 });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: unknown; stderr?: unknown };
    const output = `${String(stdout ?? "")}${String(stderr ?? "")}`;
    throw new Error(`cmake ${args[0]} failed:\n${output.slice(-4000)}`);
  }
}

/** The linker flags that link the addon against the libraries built in `libDir`. */
export function sourceLinkFlags(libDir: string): string[] {
  return [`-L${libDir}`, ...LIBRARIES.map((name) => `-l${name}`), "-Wl,-rpath,$ORIGIN"];
}

/**
 * Fills `releaseDir` with the addon and every shared library of `libDir` under the names the loader asks for (the
 * sonames, e.g. libllama.so.0, and the CPU backend they load), as real files: the build folder can then go.
 */
export function installSourceRelease(addon: string, libDir: string, releaseDir: string): void {
  rmSync(releaseDir, { recursive: true, force: true });
  mkdirSync(releaseDir, { recursive: true });
  copyFileSync(addon, path.join(releaseDir, "llama-addon.node"));
  for (const file of readdirSync(libDir)) {
    if (!/\.so(\.\d+)*$/.test(file)) continue;
    const source = path.join(libDir, file);
    // libllama.so -> libllama.so.0 -> libllama.so.0.4.0: every name becomes a copy of the real file, as copyFileSync
    // follows links (existsSync too, so a dangling one is left out).
    if (existsSync(source)) copyFileSync(source, path.join(releaseDir, file));
  }
}
