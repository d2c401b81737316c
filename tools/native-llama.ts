/**
 * llama.cpp compiled for this machine (`npm run build:addon -- --native`, or `PAGODA_NATIVE_LLAMA=1` during `npm ci`),
 * with the patched addon linked against it and registered as node-llama-cpp's local build.
 *
 * Why: node-llama-cpp's prebuilt CPU backend is one of a dozen generic variants (`libggml-cpu-zen4.so` on an EPYC),
 * and on encoders its flash-attention path measured 1.35× slower than the same llama.cpp built with `GGML_NATIVE`,
 * the way llama-server is usually built (bench/RESULTS.md, "Native llama.cpp"). Generation decodes were level.
 * The cost is a CMake build of llama.cpp's libraries from the source node-llama-cpp ships, 6.5 minutes on two
 * cores, and binaries that run only on CPUs like this one: never build an image this way for other machines.
 *
 * Only the CPU build is made; a GPU machine keeps the prebuilt CUDA or Vulkan backends, which getLlama prefers.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** The libraries the addon links against, by the CMake target's output name. */
const LIBRARIES = ["llama", "llama-common", "ggml", "ggml-base"];

export interface NativeBuildOptions {
  /** A full checkout of the llama.cpp release node-llama-cpp ships (`checkoutLlamaCpp`). */
  readonly sourceDir: string;
  readonly buildDir: string;
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

/** A full checkout of the llama.cpp release in node-llama-cpp's git bundle, made once into `dir`. */
export function checkoutLlamaCpp(bundle: string, dir: string): string {
  const tree = path.join(dir, "src");
  if (existsSync(path.join(tree, "CMakeLists.txt"))) return tree;
  const gitDir = path.join(dir, "llama.cpp.git");
  rmSync(dir, { recursive: true, force: true });
  checkoutFromBundle(bundle, gitDir, tree, ["."]);
  rmSync(gitDir, { recursive: true, force: true });
  return tree;
}

/** Configures and builds llama.cpp's shared libraries for this CPU; returns the folder holding them. */
export function buildNativeLibraries(options: NativeBuildOptions): string {
  const { sourceDir, buildDir, log } = options;
  const configure = [
    "-S",
    sourceDir,
    "-B",
    buildDir,
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    "-DGGML_NATIVE=ON",
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
  log("configuring llama.cpp for this CPU (GGML_NATIVE)");
  cmake(configure);
  log(`building llama.cpp's libraries on ${os.availableParallelism()} cores (about 7 minutes on two, the first time)`);
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

/** The linker flags that link the addon against the native libraries in `libDir`. */
export function nativeLinkFlags(libDir: string): string[] {
  return [`-L${libDir}`, ...LIBRARIES.map((name) => `-l${name}`), "-Wl,-rpath,$ORIGIN"];
}

/**
 * Fills `releaseDir` with the addon and every shared library of `libDir` under the names the loader asks for (the
 * sonames, e.g. libllama.so.0, and the CPU backend they load), as real files: the build folder can then go.
 */
export function installNativeRelease(addon: string, libDir: string, releaseDir: string): void {
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
