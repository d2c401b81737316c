/**
 * Registers the patched CPU addon as node-llama-cpp's local build, so that a server start loads it directly.
 *
 * On linux, `getLlama` first loads a prebuilt addon in a child process to prove it does not crash: about 0.5 s of
 * every start-up, a quarter of it on stories260K. It skips that check for a local build made on a system of the same
 * name and version (`getShouldTestBinaryBeforeLoading` in node-llama-cpp 3.21.1). The patched addon is compiled here,
 * against this machine's toolchain, so it is a local build in fact. It is entered in
 * `llama/localBuilds/<platform>-<arch>/`, with relative links to the files of the prebuilt package (llama.cpp's
 * libraries and CPU variants load from there as before) and build metadata naming this system, and kept only once a
 * child process has loaded it from there through `getLlama` (the check start-up would otherwise make each time). On
 * another system version node-llama-cpp tests it again; GPU builds keep the prebuilt path and its check.
 *
 * When llama.cpp was compiled at install (tools/llama-source-build.ts), the local build is instead the addon linked
 * against those libraries, which the folder holds itself.
 *
 * A local build that node-llama-cpp itself made (`npx node-llama-cpp source build`) is never replaced.
 */
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { installSourceRelease } from "./llama-source-build.ts";

/** Marks a local build folder as pagoda's: the addon stamp it was registered for, and its kind. */
const MARKER_FILE = "pagoda-local-build";
const METADATA_FILE = "_nlcBuildMetadata.json";

interface PlatformInfo {
  readonly name: string;
  readonly version: string;
}

/** What fills the local build: links to the prebuilt package's files, or a source build's own libraries. */
export type LocalBuildSource =
  | { readonly kind: "prebuilt"; readonly binsDir: string }
  | {
      readonly kind: "source";
      /** The CPU target llama.cpp was compiled for (`zen4`, `native`) */
      readonly target: string;
      readonly addon: string;
      readonly libDir: string;
      readonly binsDir: string;
    };

/** How a registration is named in its marker, the install log and `--check`: `prebuilt`, or `source:<target>`. */
export function localBuildLabel(source: LocalBuildSource): string {
  return source.kind === "prebuilt" ? "prebuilt" : `source:${source.target}`;
}

function localBuildDir(packageDir: string): string {
  return path.join(packageDir, "llama", "localBuilds", `${process.platform}-${process.arch}`);
}

/** The label of pagoda's registration for this addon stamp (`localBuildLabel`), or null when there is none. */
export function registeredLocalBuild(packageDir: string, stamp: string): string | null {
  const marker = path.join(localBuildDir(packageDir), MARKER_FILE);
  if (!existsSync(marker)) return null;
  const [markedStamp, label = "prebuilt"] = readFileSync(marker, "utf8").trim().split(" ");
  if (markedStamp !== stamp) return null;
  // `native` marked the one source build there was before targets had names.
  return label === "native" ? "source:native" : label;
}

/** The system name and version as node-llama-cpp reads them (its own function, so the comparison is exact). */
async function platformInfo(packageDir: string): Promise<PlatformInfo> {
  const module = path.join(packageDir, "dist", "bindings", "utils", "getPlatformInfo.js");
  const { getPlatformInfo } = (await import(pathToFileURL(module).href)) as {
    getPlatformInfo: () => Promise<PlatformInfo>;
  };
  return getPlatformInfo();
}

/** Loads the CPU addon in a child process through node-llama-cpp's own loader; throws when that fails. */
function proveLoads(projectDir: string): void {
  // No --input-type flag: node-llama-cpp's check passes this process's flags on to its own test process.
  const script =
    'import("node-llama-cpp").then(({ getLlama }) => getLlama({ gpu: false, build: "never", progressLogs: false }))' +
    '.then((llama) => { if (typeof llama._bindings.AddonContext.prototype.isKvUnified !== "function") throw new Error("not the patched addon"); return llama.dispose(); })' +
    ".catch((error) => { console.error(error); process.exit(1); });";
  execFileSync(process.execPath, ["-e", script], { cwd: projectDir, stdio: "pipe" });
}

/** Links every file of `binsDir` but the build metadata into `releaseDir`, relatively. */
function linkPrebuilt(binsDir: string, releaseDir: string): void {
  mkdirSync(releaseDir, { recursive: true });
  for (const file of readdirSync(binsDir)) {
    if (file === METADATA_FILE) continue;
    symlinkSync(path.relative(releaseDir, path.join(binsDir, file)), path.join(releaseDir, file));
  }
}

/**
 * Enters the CPU addon as the local build, when the folder is free or pagoda's, and proves it loads in a child
 * process. Returns what it did, for the install log; a failure leaves no registration, and start-up keeps the
 * prebuilt binary and node-llama-cpp's check.
 */
export async function registerLocalBuild(
  packageDir: string,
  projectDir: string,
  stamp: string,
  source: LocalBuildSource,
): Promise<string> {
  const dir = localBuildDir(packageDir);
  if (existsSync(dir) && !existsSync(path.join(dir, MARKER_FILE))) {
    return "a local build of node-llama-cpp's own is in place; leaving it";
  }
  rmSync(dir, { recursive: true, force: true });
  const staging = `${dir}.tmp-${process.pid}`;
  const release = path.join(staging, "Release");
  rmSync(staging, { recursive: true, force: true });
  if (source.kind === "prebuilt") linkPrebuilt(source.binsDir, release);
  else installSourceRelease(source.addon, source.libDir, release);
  const metadata = JSON.parse(readFileSync(path.join(source.binsDir, METADATA_FILE), "utf8")) as {
    buildOptions: Record<string, unknown>;
  };
  metadata.buildOptions.platformInfo = await platformInfo(packageDir);
  writeFileSync(path.join(release, METADATA_FILE), JSON.stringify(metadata));
  writeFileSync(path.join(staging, "buildDone.status"), "");
  writeFileSync(path.join(staging, MARKER_FILE), `${stamp} ${localBuildLabel(source)}\n`);
  renameSync(staging, dir);
  try {
    proveLoads(projectDir);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const detail = error instanceof Error && "stderr" in error ? String(error.stderr).trim() : String(error);
    return `the ${localBuildLabel(source)} addon did not load in a child process, so it is not registered as a local build: ${detail}`;
  }
  return source.kind === "prebuilt"
    ? "registered as node-llama-cpp's local build (start-up skips the prebuilt binary's test process)"
    : `registered llama.cpp compiled here for the ${source.target} target, with the patched addon, as node-llama-cpp's local build`;
}
