import assert from "node:assert/strict";
import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { registeredLocalBuild } from "../../tools/addon-local-build.ts";
import { installNativeRelease, nativeLinkFlags } from "../../tools/native-llama.ts";
import { withTempDir } from "../helpers/gguf-files.ts";

test("a native release holds the addon and every library name of the build as real files, and nothing else", async () => {
  await withTempDir("native-release", async (dir) => {
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

    installNativeRelease(addon, libDir, release);

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
  assert.deepEqual(nativeLinkFlags("/b/bin"), [
    "-L/b/bin",
    "-lllama",
    "-lllama-common",
    "-lggml",
    "-lggml-base",
    "-Wl,-rpath,$ORIGIN",
  ]);
});

test("the registration marker tells the kind for the current addon stamp only", async () => {
  await withTempDir("local-build-marker", async (packageDir) => {
    const dir = path.join(packageDir, "llama", "localBuilds", `${process.platform}-${process.arch}`);
    assert.equal(registeredLocalBuild(packageDir, "abc"), null, "no folder");
    mkdirSync(dir, { recursive: true });
    assert.equal(registeredLocalBuild(packageDir, "abc"), null, "a folder without pagoda's marker");
    writeFileSync(path.join(dir, "pagoda-local-build"), "abc native\n");
    assert.equal(registeredLocalBuild(packageDir, "abc"), "native");
    assert.equal(registeredLocalBuild(packageDir, "def"), null, "another addon stamp");
    writeFileSync(path.join(dir, "pagoda-local-build"), "abc prebuilt\n");
    assert.equal(registeredLocalBuild(packageDir, "abc"), "prebuilt");
    writeFileSync(path.join(dir, "pagoda-local-build"), "abc\n");
    assert.equal(registeredLocalBuild(packageDir, "abc"), "prebuilt", "an earlier marker, before native builds");
  });
});
