/**
 * Builds node-llama-cpp's native addon with pagoda's patch (patches/) and installs it over the prebuilt one.
 *
 * The patch adds what the stock addon cannot do: a KV pool shared by every sequence (`kvUnified`), zero-copy
 * prefix forks between sequences (`copySequenceCells`), raw logits (`getLogits`), a sequence's cells copied to host
 * memory and back (`saveSequenceCells`/`restoreSequenceCells`), a grammar state's mask over the whole vocabulary
 * (`getGrammarMask`, for verifying speculative drafts of constrained requests), an embedding context's pooled vector
 * per sequence (`poolingType`, `getSequenceEmbedding`, so one decode embeds many inputs), the decode and greedy
 * picks in one native task (`decodeBatchArgmax`, one thread-pool round trip per step instead of two; and
 * `decodeBatchArgmaxSync`, none, for steps shorter than the round trip's thread wake-ups), one thread for every
 * multi-threaded decode of the process (one OpenMP team, not one per libuv pool thread) and, as a module function,
 * llama.cpp's quantiser (`quantizeModel(inputPath, outputPath, fileTypeName, threads)`, for `pagoda synth --type
 * q4_k_m|q6_k`; see src/engine/quantize-model.ts). The addon's own sources are compiled once (about 15 s) and linked
 * against the llama.cpp libraries of every prebuilt package, so every backend plugin they ship (CPU variants, CUDA)
 * keeps working; on x86-64 Linux, llama.cpp's CPU libraries are also compiled here and the CPU addon linked against
 * them (tools/llama-source-build.ts, about 6 minutes on two cores the first time), with patches/llama.cpp-*.patch
 * applied (flash attention over a shared KV pool; PAGODA_STOCK_FLASH_ATTN=1 at run time switches the patched kernel
 * back to llama.cpp's own, for comparison). Everything comes from the
 * installed npm packages: the addon sources and llama.cpp's source (the git bundle node-llama-cpp carries), no
 * network.
 *
 *   node --import tsx tools/build-addon.ts           build and install where missing or stale (npm's prepare step)
 *   node --import tsx tools/build-addon.ts --check   exit 1 unless the CPU addon is patched
 *   node --import tsx tools/build-addon.ts --force   rebuild even when the stamp matches
 *   node --import tsx tools/build-addon.ts --native  compile llama.cpp for this CPU only (-march=native)
 *
 * PAGODA_LLAMA_BUILD picks the llama.cpp libraries of the CPU addon: `source` (the default: compiled here for the
 * ggml CPU variant this CPU loads), `native` (as --native) or `prebuilt` (node-llama-cpp's own; what a container
 * image built for other machines wants, and the quickest install). Without cmake, or when that compile fails, the
 * prebuilt stays with a warning (an error when PAGODA_LLAMA_BUILD names the choice).
 *
 * Missing build tools (g++, git) leave the stock addon in place with a warning, and pagoda then runs with one KV
 * slab per sequence and no prefix cache; a compile error fails the install.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { registeredLocalBuild, registerLocalBuild } from "./addon-local-build.ts";
import {
  buildLlamaLibraries,
  type CpuTarget,
  checkoutFromBundle,
  checkoutLlamaCpp,
  defaultCpuTarget,
  llamaCppPatches,
  NATIVE_TARGET,
  sourceLinkFlags,
} from "./llama-source-build.ts";

const NODE_LLAMA_CPP_VERSION = "3.21.1";
const PROJECT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PATCH_FILE = path.join(PROJECT_DIR, "patches", `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}-addon.patch`);
/** Patches to the llama.cpp release node-llama-cpp ships, applied where llama.cpp is compiled here. */
const LLAMA_CPP_PATCHES = llamaCppPatches(path.join(PROJECT_DIR, "patches"));
const STAMP_FILE = "llama-addon.pagoda-stamp";
const STOCK_SUFFIX = ".stock";
/** Folders of llama.cpp's tree whose headers the addon includes. */
const HEADER_DIRS = ["include", "ggml/include", "src", "common"];
const DEFINES = [
  "-DGGML_BACKEND_SHARED",
  "-DGGML_SHARED",
  "-DLLAMA_SHARED",
  "-DNAPI_VERSION=7",
  "-DBUILDING_NODE_EXTENSION",
];

class MissingToolError extends Error {}

interface Variant {
  /** e.g. linux-x64 or linux-x64-cuda */
  readonly name: string;
  /** The folder holding llama-addon.node and the llama.cpp shared libraries. */
  readonly binsDir: string;
}

function log(message: string): void {
  process.stdout.write(`[pagoda addon] ${message}\n`);
}

function nodeLlamaCppDir(): string {
  const require = createRequire(path.join(PROJECT_DIR, "package.json"));
  // The package's exports hide package.json; walk up from its entry point.
  let dir = path.dirname(require.resolve("node-llama-cpp"));
  while (!existsSync(path.join(dir, "llama", "gitRelease.bundle"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("node-llama-cpp's package folder was not found");
    dir = parent;
  }
  const { version } = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { version: string };
  if (version !== NODE_LLAMA_CPP_VERSION) {
    throw new Error(`the patch is for node-llama-cpp ${NODE_LLAMA_CPP_VERSION}, installed is ${version}`);
  }
  return dir;
}

/**
 * Prebuilt packages for this platform whose addon can be rebuilt with the compiler alone. The Vulkan build also
 * needs the Vulkan SDK for its GPU queries, so it keeps the stock addon.
 */
function findVariants(packageDir: string): Variant[] {
  const scopeDir = path.resolve(packageDir, "..", "@node-llama-cpp");
  if (!existsSync(scopeDir)) return [];
  const prefix = `${process.platform}-${process.arch}`;
  const variants: Variant[] = [];
  for (const name of readdirSync(scopeDir)) {
    if (name !== prefix && !name.startsWith(`${prefix}-`)) continue;
    if (name.includes("vulkan")) continue;
    const binsRoot = path.join(scopeDir, name, "bins");
    if (!existsSync(binsRoot)) continue;
    for (const bins of readdirSync(binsRoot)) {
      const binsDir = path.join(binsRoot, bins);
      if (!existsSync(path.join(binsDir, "llama-addon.node"))) continue;
      if (librariesIn(binsDir).length > 0) variants.push({ name, binsDir });
      else log(`${name}: llama.cpp libraries not recognised, keeping its stock addon`);
    }
  }
  return variants;
}

/** The llama.cpp libraries the addon links against, by file name (their names carry the release). */
function librariesIn(binsDir: string): string[] {
  // GPU builds carry the backend in the name: libllama.cuda.v0.4.0.so.
  const wanted = [
    /^libllama-common\.so$/,
    /^libllama(\.[a-z]+)?(\.v[\d.]+)?\.so$/,
    /^libggml(\.[a-z]+)?(\.v[\d.]+)?\.so$/,
    /^libggml-base\.so$/,
  ];
  const files = readdirSync(binsDir);
  const found = wanted.map((pattern) => files.find((file) => pattern.test(file)));
  return found.every((file) => file !== undefined) ? (found as string[]) : [];
}

function stampOf(packageDir: string): string {
  const hash = createHash("sha256");
  hash.update(readFileSync(PATCH_FILE));
  for (const patch of LLAMA_CPP_PATCHES) hash.update(readFileSync(patch));
  hash.update(readFileSync(fileURLToPath(import.meta.url)));
  // How llama.cpp is compiled here is part of what the registration stands for.
  hash.update(readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "llama-source-build.ts")));
  hash.update(readFileSync(path.join(packageDir, "llama", "gitRelease.bundle")).subarray(0, 4096));
  return hash.digest("hex").slice(0, 16);
}

function isInstalled(variant: Variant, stamp: string): boolean {
  const file = path.join(variant.binsDir, STAMP_FILE);
  return existsSync(file) && readFileSync(file, "utf8").trim() === stamp;
}

function hasTool(command: string): boolean {
  try {
    execFileSync(command, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function requireTool(command: string): void {
  if (!hasTool(command)) throw new MissingToolError(`${command} is not installed`);
}

/** Addon sources with the patch applied, and llama.cpp's headers from the package's own git bundle. */
function prepareSources(packageDir: string, workDir: string): string {
  rmSync(workDir, { recursive: true, force: true });
  const sourceDir = path.join(workDir, "src");
  mkdirSync(sourceDir, { recursive: true });
  execFileSync("cp", ["-r", path.join(packageDir, "llama", "addon"), sourceDir]);
  execFileSync("git", ["apply", "--whitespace=nowarn", "--directory=addon", "-p2", PATCH_FILE], {
    cwd: sourceDir,
    stdio: "inherit",
  });

  const bundle = path.join(packageDir, "llama", "gitRelease.bundle");
  checkoutFromBundle(bundle, path.join(workDir, "llama.cpp.git"), path.join(workDir, "llama.cpp"), HEADER_DIRS);
  return sourceDir;
}

function compilerFlags(workDir: string): string[] {
  const require = createRequire(path.join(PROJECT_DIR, "package.json"));
  const addonApiDir = path.dirname(require.resolve("node-addon-api/package.json"));
  let nodeApiInclude: string;
  try {
    nodeApiInclude = (require("node-api-headers") as { include_dir: string }).include_dir;
  } catch {
    nodeApiInclude = path.resolve(process.execPath, "..", "..", "include", "node");
  }
  const llamaDir = path.join(workDir, "llama.cpp");
  return [
    "-O2",
    "-fPIC",
    "-std=c++17",
    "-fexceptions",
    "-w",
    ...DEFINES,
    `-I${llamaDir}`,
    ...HEADER_DIRS.map((dir) => `-I${path.join(llamaDir, dir)}`),
    `-I${addonApiDir}`,
    `-I${nodeApiInclude}`,
  ];
}

async function run(command: string, args: readonly string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`))));
  });
}

/** Compiles every addon source once, a few at a time; the objects do not depend on the variant. */
async function compile(sourceDir: string, workDir: string): Promise<string[]> {
  const addonDir = path.join(sourceDir, "addon");
  const sources = [
    ...readdirSync(addonDir)
      .filter((file) => file.endsWith(".cpp"))
      .map((file) => path.join(addonDir, file)),
    ...readdirSync(path.join(addonDir, "globals"))
      .filter((file) => file.endsWith(".cpp"))
      .map((file) => path.join(addonDir, "globals", file)),
  ];
  const objectDir = path.join(workDir, "obj");
  mkdirSync(objectDir, { recursive: true });
  const flags = compilerFlags(workDir);
  const objects = sources.map((source) => path.join(objectDir, `${path.basename(source, ".cpp")}.o`));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < sources.length) {
      const index = next++;
      await run("g++", [...flags, "-c", sources[index]!, "-o", objects[index]!]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, os.availableParallelism()) }, worker));
  return objects;
}

async function link(objects: readonly string[], output: string, flags: readonly string[]): Promise<string> {
  await run("g++", ["-shared", "-o", output, ...objects, ...flags]);
  return output;
}

function variantLinkFlags(variant: Variant): string[] {
  const libraries = librariesIn(variant.binsDir).map((file) => `-l:${file}`);
  return [`-L${variant.binsDir}`, ...libraries, "-Wl,-rpath,$ORIGIN"];
}

/** Keeps the stock addon beside the patched one, so a reinstall of the package is never needed to go back. */
function install(built: string, variant: Variant, stamp: string): void {
  const target = path.join(variant.binsDir, "llama-addon.node");
  const stock = target + STOCK_SUFFIX;
  if (!existsSync(stock)) renameSync(target, stock);
  const temporary = `${target}.tmp-${process.pid}`;
  copyFileSync(built, temporary);
  renameSync(temporary, target);
  writeFileSync(path.join(variant.binsDir, STAMP_FILE), `${stamp}\n`);
}

/** The CPU target to compile llama.cpp for, or null for the prebuilt libraries; `explicit` when asked for by name. */
function chosenTarget(argv: readonly string[]): { readonly target: CpuTarget | null; readonly explicit: boolean } {
  const choice = argv.includes("--native") ? "native" : (process.env.PAGODA_LLAMA_BUILD ?? "source");
  if (choice === "native") return { target: NATIVE_TARGET, explicit: true };
  if (choice === "prebuilt") return { target: null, explicit: true };
  if (choice !== "source") throw new Error(`PAGODA_LLAMA_BUILD must be source, native or prebuilt, not ${choice}`);
  const target = defaultCpuTarget();
  if (target === null) log(`no source build on ${process.platform}-${process.arch}: node-llama-cpp's prebuilt stays`);
  return { target, explicit: process.env.PAGODA_LLAMA_BUILD !== undefined };
}

async function main(argv: readonly string[]): Promise<number> {
  const packageDir = nodeLlamaCppDir();
  const variants = findVariants(packageDir);
  const stamp = stampOf(packageDir);
  const cpu = variants.find((variant) => variant.name === `${process.platform}-${process.arch}`);
  if (argv.includes("--check")) {
    const ok = cpu !== undefined && isInstalled(cpu, stamp);
    const registered = ok ? registeredLocalBuild(packageDir, stamp) : null;
    if (registered?.startsWith("source:")) log(`local build: llama.cpp compiled here (${registered})`);
    else if (ok && registered === null) {
      log("note: not registered as a local build, so each start-up tests the binary in a child process");
    }
    log(ok ? `patched addon installed (${stamp})` : "the patched addon is not installed: run npm run build:addon");
    return ok ? 0 : 1;
  }
  const stale = argv.includes("--force") ? variants : variants.filter((variant) => !isInstalled(variant, stamp));
  if (variants.length === 0 || cpu === undefined) {
    log(`no prebuilt llama.cpp libraries for ${process.platform}-${process.arch}: keeping the stock addon`);
    return 0;
  }
  const { target, explicit } = chosenTarget(argv);
  const wanted = target === null ? "prebuilt" : `source:${target.name}`;
  let needsSource = target !== null && registeredLocalBuild(packageDir, stamp) !== wanted;
  if (needsSource && !hasTool("cmake")) {
    log("WARNING: cmake is not installed, so llama.cpp is not compiled here; node-llama-cpp's prebuilt stays");
    if (explicit) return 1;
    needsSource = false;
  }
  // The prebuilt is registered when asked for, and where no source build is (a failed one, or no cmake).
  const register = async (): Promise<void> => {
    const registered = registeredLocalBuild(packageDir, stamp);
    if (!isInstalled(cpu, stamp) || registered === "prebuilt" || (target !== null && registered !== null)) return;
    const source = { kind: "prebuilt", binsDir: cpu.binsDir } as const;
    log(`${cpu.name}: ${await registerLocalBuild(packageDir, PROJECT_DIR, stamp, source)}`);
  };
  if (stale.length === 0 && !needsSource) {
    log(`patched addon up to date (${stamp}, ${registeredLocalBuild(packageDir, stamp) ?? wanted})`);
    await register();
    return 0;
  }
  try {
    requireTool("g++");
    requireTool("git");
  } catch (error) {
    if (!(error instanceof MissingToolError)) throw error;
    log(
      `WARNING: ${error.message}; keeping the stock addon. pagoda will run without the shared KV pool and prefix cache.`,
    );
    return 0;
  }
  const started = Date.now();
  const workDir = path.join(PROJECT_DIR, ".cache", "addon-build");
  const sourceDir = prepareSources(packageDir, workDir);
  const objects = await compile(sourceDir, workDir);
  for (const variant of stale) {
    install(await link(objects, path.join(workDir, `${variant.name}.node`), variantLinkFlags(variant)), variant, stamp);
    log(`installed the patched addon for ${variant.name}`);
  }
  if (needsSource && target !== null) {
    try {
      // The checkout and CMake's build folder stay in .cache: a later addon patch relinks without recompiling (a new
      // llama.cpp patch checks the tree out again).
      const cacheDir = path.join(PROJECT_DIR, ".cache", "llama-source");
      const libDir = buildLlamaLibraries({
        sourceDir: checkoutLlamaCpp(path.join(packageDir, "llama", "gitRelease.bundle"), cacheDir, LLAMA_CPP_PATCHES),
        buildDir: path.join(cacheDir, `build-${target.name}`),
        target,
        log,
      });
      const addon = await link(objects, path.join(workDir, "source.node"), sourceLinkFlags(libDir));
      const source = { kind: "source", target: target.name, addon, libDir, binsDir: cpu.binsDir } as const;
      log(`${cpu.name}: ${await registerLocalBuild(packageDir, PROJECT_DIR, stamp, source)}`);
    } catch (error) {
      if (explicit) throw error;
      const message = error instanceof Error ? error.message : String(error);
      log(`WARNING: compiling llama.cpp failed, so node-llama-cpp's prebuilt stays: ${message}`);
    }
  }
  rmSync(workDir, { recursive: true, force: true });
  await register();
  log(`built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`[pagoda addon] build failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
