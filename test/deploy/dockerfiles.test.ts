/**
 * Both Dockerfiles, parsed (there is no Docker engine here to build them): base images, a numeric non-root user
 * matching the Kubernetes manifests, exec-form CMD and HEALTHCHECK, the environment pagoda reads, compiled
 * JavaScript only, the unused llama.cpp prebuilds removed after the prune that would restore them, and a CUDA
 * base whose major is the one node-llama-cpp's CUDA prebuilt links.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { REPO_ROOT } from "./kustomize.ts";

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

interface Stage {
  readonly from: string;
  readonly instructions: Instruction[];
}

/** The stages of a Dockerfile, line continuations joined, comments dropped, global ARG defaults substituted. */
function parseDockerfile(file: string): Stage[] {
  const lines = readFileSync(path.join(REPO_ROOT, file), "utf8")
    .split("\n")
    .filter((line) => !/^\s*#/.test(line));
  const logical = lines.join("\n").replaceAll(/\\\n/g, " ").split("\n");
  const globals: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of logical.map((entry) => entry.trim()).filter((entry) => entry.length > 0)) {
    const [keyword = "", ...rest] = line.split(/\s+/);
    const args = rest.join(" ");
    if (keyword.toUpperCase() === "ARG" && stages.length === 0) {
      const [name = "", value = ""] = args.split("=");
      globals[name] = value;
    } else if (keyword.toUpperCase() === "FROM") {
      const image = args.split(/\s+/)[0] ?? "";
      stages.push({
        from: image.replaceAll(/\$\{(\w+)\}/g, (_, name: string) => globals[name] ?? ""),
        instructions: [],
      });
    } else {
      stages.at(-1)?.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

function all(stage: Stage, keyword: string): string[] {
  return stage.instructions.filter((entry) => entry.keyword === keyword).map((entry) => entry.args);
}

/** `ENV A=1 B=2` pairs of a stage. */
function environment(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const args of all(stage, "ENV")) {
    for (const pair of args.split(/\s+/)) {
      const [name = "", value = ""] = pair.split("=");
      env[name] = value;
    }
  }
  return env;
}

/** The pod's user in the Kubernetes base, which the image's USER must be. */
function manifestUser(): string {
  const deployment = parse(readFileSync(path.join(REPO_ROOT, "deploy/k8s/base/deployment.yaml"), "utf8"));
  const context = deployment.spec.template.spec.securityContext;
  return `${context.runAsUser}:${context.runAsGroup}`;
}

/** The CUDA major that @node-llama-cpp/linux-x64-cuda's CUDA backend links (its DT_NEEDED libcudart.so.N). */
function installedCudaMajor(): string | null {
  const bins = path.join(REPO_ROOT, "node_modules/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda");
  if (!existsSync(bins)) return null;
  const library = readdirSync(bins).find((file) => file === "libggml-cuda.so");
  if (library === undefined) return null;
  // The soname strings sit in .dynstr; a byte search reads them without readelf.
  const text = readFileSync(path.join(bins, library)).toString("latin1");
  const majors = new Set([...text.matchAll(/libcudart\.so\.(\d+)/g)].map((match) => match[1]));
  assert.equal(majors.size, 1, `one CUDA runtime major: ${[...majors]}`);
  return [...majors][0] ?? null;
}

function assertRuntimeStage(stage: Stage, gpu: string): void {
  assert.equal(all(stage, "USER").at(-1), manifestUser(), "numeric and the manifests' runAsUser:runAsGroup");
  const env = environment(stage);
  assert.equal(env.NODE_ENV, "production");
  assert.equal(env.PAGODA_HOST, "0.0.0.0");
  assert.equal(env.PAGODA_PORT, "8080");
  assert.equal(env.PAGODA_MODELS_DIR, "/models");
  assert.equal(env.PAGODA_CACHE_DIR, "/var/cache/pagoda");
  assert.equal(env.PAGODA_GPU, gpu);
  assert.deepEqual(all(stage, "EXPOSE"), [env.PAGODA_PORT]);
  assert.deepEqual(JSON.parse(all(stage, "CMD").at(-1) ?? "null"), ["node", "bin/pagoda.js"], "exec form");
  const healthcheck = all(stage, "HEALTHCHECK").at(-1) ?? "";
  const command = JSON.parse(healthcheck.slice(healthcheck.indexOf("CMD ") + 4)) as string[];
  assert.equal(command[0], "node", "exec form: no shell needed");
  assert.match(command.join(" "), /\/health/);
  const copies = all(stage, "COPY");
  assert.ok(
    copies.some((args) => /\/app\/dist\s/.test(args)),
    "runs dist/",
  );
  assert.ok(!copies.some((args) => /(^|\s)\.?\/?src\b/.test(args)), "no sources: bin/pagoda.js never transpiles");
}

/** The RUN that removes @node-llama-cpp packages comes after the prune (which would restore them). */
function assertPrebuildsRemovedAfterPrune(stage: Stage): string {
  const runs = all(stage, "RUN");
  const prune = runs.findIndex((args) => args.includes("npm prune"));
  const removal = runs.findIndex((args) => args.includes("@node-llama-cpp") && args.includes("rm -rf"));
  assert.ok(prune >= 0 && removal > prune, "prebuilds are removed after npm prune");
  return runs[removal] ?? "";
}

test("the CPU Dockerfile: a build stage, then node 20 slim running dist/ as uid 1000 with only the CPU prebuild", () => {
  const stages = parseDockerfile("Dockerfile");
  assert.equal(stages.length, 2);
  const [build, runtime] = stages as [Stage, Stage];
  assert.equal(build.from, "node:20-bookworm-slim");
  assert.equal(runtime.from, "node:20-bookworm-slim");
  const removal = assertPrebuildsRemovedAfterPrune(build);
  assert.match(removal, /keep="linux-\$\(node -p process\.arch\)"/, "keeps this architecture's CPU build");
  assertRuntimeStage(runtime, "false");
});

test("the CUDA Dockerfile: a CUDA runtime base of the major node-llama-cpp's CUDA prebuilt links", () => {
  const stages = parseDockerfile("deploy/docker/Dockerfile.cuda");
  const build = stages[0] as Stage;
  const runtime = stages.at(-1) as Stage;
  assert.equal(build.from, "node:20-bookworm-slim");
  const cuda = /^nvidia\/cuda:(\d+)\.\d+\.\d+-runtime-ubuntu\d+\.\d+$/.exec(runtime.from);
  assert.ok(cuda !== null, `an nvidia/cuda runtime image: ${runtime.from}`);
  const major = installedCudaMajor();
  if (major !== null) assert.equal(cuda[1], major, `libggml-cuda.so links libcudart.so.${major}`);
  assert.ok(
    all(runtime, "COPY").some((args) => args.startsWith("--from=node /usr/local/bin/node")),
    "node from the official image",
  );
  const removal = assertPrebuildsRemovedAfterPrune(build);
  assert.match(removal, /linux-x64\|linux-x64-cuda\|/, "keeps the CPU and CUDA builds");
  assert.ok(
    all(build, "RUN").some((args) => args.includes("cmp ") && args.includes("linux-x64-cuda")),
    "patched CUDA addon",
  );
  assertRuntimeStage(runtime, "cuda");
  assert.match(
    environment(runtime).CUDA_CACHE_PATH ?? "",
    /^\/var\/cache\/pagoda\//,
    "JIT cache on the writable volume",
  );
});
