/**
 * Registers the patched CPU addon as node-llama-cpp's local build, so that a server start loads it directly.
 *
 * On linux, `getLlama` first loads a prebuilt addon in a child process to prove it does not crash: about 0.5 s of
 * every start-up, a quarter of it on stories260K. It skips that check for a local build made on a system of the same
 * name and version (`getShouldTestBinaryBeforeLoading` in node-llama-cpp 3.21.1). The patched addon is compiled here,
 * against this machine's toolchain, so it is a local build in fact: once a child process has loaded it through
 * `getLlama` (the very check start-up would make), it is entered in `llama/localBuilds/<platform>-<arch>/`, with
 * relative links to the files of the prebuilt package (llama.cpp's libraries and CPU variants load from there as
 * before) and build metadata naming this system. On another system version node-llama-cpp tests it again; GPU
 * builds keep the prebuilt path and its check.
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

/** Marks a local build folder as pagoda's, and holds the stamp of the addon it was registered for. */
const MARKER_FILE = "pagoda-local-build";
const METADATA_FILE = "_nlcBuildMetadata.json";

interface PlatformInfo {
  readonly name: string;
  readonly version: string;
}

function localBuildDir(packageDir: string): string {
  return path.join(packageDir, "llama", "localBuilds", `${process.platform}-${process.arch}`);
}

/** True when the local build folder holds pagoda's registration for this addon stamp. */
export function isLocalBuildRegistered(packageDir: string, stamp: string): boolean {
  const marker = path.join(localBuildDir(packageDir), MARKER_FILE);
  return existsSync(marker) && readFileSync(marker, "utf8").trim() === stamp;
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
    ".then((llama) => llama.dispose())" +
    ".catch((error) => { console.error(error); process.exit(1); });";
  execFileSync(process.execPath, ["-e", script], { cwd: projectDir, stdio: "pipe" });
}

/**
 * Enters the CPU addon in `binsDir` as the local build, when the folder is free or pagoda's. Returns what it did,
 * for the install log; a failure leaves no registration, and start-up keeps node-llama-cpp's check.
 */
export async function registerLocalBuild(
  packageDir: string,
  projectDir: string,
  binsDir: string,
  stamp: string,
): Promise<string> {
  const dir = localBuildDir(packageDir);
  if (existsSync(dir) && !existsSync(path.join(dir, MARKER_FILE))) {
    return "a local build of node-llama-cpp's own is in place; leaving it";
  }
  // Unregistered first, so that the proof goes through the prebuilt path and its check in the child process.
  rmSync(dir, { recursive: true, force: true });
  try {
    proveLoads(projectDir);
  } catch (error) {
    const detail = error instanceof Error && "stderr" in error ? String(error.stderr).trim() : String(error);
    return `the addon did not load in a child process, so it is not registered as a local build: ${detail}`;
  }
  const staging = `${dir}.tmp-${process.pid}`;
  const release = path.join(staging, "Release");
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(release, { recursive: true });
  for (const file of readdirSync(binsDir)) {
    if (file === METADATA_FILE) continue;
    symlinkSync(path.relative(release, path.join(binsDir, file)), path.join(release, file));
  }
  const metadata = JSON.parse(readFileSync(path.join(binsDir, METADATA_FILE), "utf8")) as {
    buildOptions: Record<string, unknown>;
  };
  metadata.buildOptions.platformInfo = await platformInfo(packageDir);
  writeFileSync(path.join(release, METADATA_FILE), JSON.stringify(metadata));
  writeFileSync(path.join(staging, "buildDone.status"), "");
  writeFileSync(path.join(staging, MARKER_FILE), `${stamp}\n`);
  renameSync(staging, dir);
  return "registered as node-llama-cpp's local build (start-up skips the prebuilt binary's test process)";
}
