/**
 * Renders deploy/k8s with `kubectl kustomize` (kubectl 1.32 carries kustomize v5.5) and finds objects in the
 * result. Without kubectl the tests that need it skip, saying so.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import type { K8sObject } from "./manifest-schemas.ts";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const K8S_DIR = path.join(REPO_ROOT, "deploy/k8s");
export const OVERLAYS = ["cpu", "cuda", "gie", "keda", "hpa", "monitoring"] as const;
export type Overlay = (typeof OVERLAYS)[number];

export const KUBECTL_MISSING =
  "KUBECTL NOT INSTALLED: the Kubernetes manifests were NOT rendered or checked (install the kubectl client)";

export function hasKubectl(): boolean {
  return spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;
}

/** The objects `kubectl kustomize dir` renders. */
export function renderDir(dir: string): K8sObject[] {
  const text = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return parseAllDocuments(text).map((document) => {
    if (document.errors.length > 0) throw document.errors[0];
    return document.toJSON() as K8sObject;
  });
}

export function renderOverlay(overlay: Overlay): K8sObject[] {
  return renderDir(path.join(K8S_DIR, "overlays", overlay));
}

/**
 * Renders a kustomization written to a temporary directory: `resource` (a folder under deploy/k8s) with the given
 * components, as a user composes them.
 */
export function renderComposed(resource: string, components: readonly string[]): K8sObject[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), "pagoda-kustomize-"));
  try {
    const relative = (folder: string): string => path.relative(dir, path.join(K8S_DIR, folder));
    const lines = [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      "resources:",
      `  - ${relative(resource)}`,
      "components:",
      ...components.map((component) => `  - ${relative(component)}`),
    ];
    writeFileSync(path.join(dir, "kustomization.yaml"), `${lines.join("\n")}\n`);
    return renderDir(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The one object of `kind` (and `name`, when given); throws when there is none or more than one. */
export function one(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter(
    (object) => object.kind === kind && (name === undefined || object.metadata.name === name),
  );
  if (found.length !== 1)
    throw new Error(`expected one ${kind}${name === undefined ? "" : `/${name}`}, found ${found.length}`);
  return found[0] as K8sObject;
}

export function maybeOne(objects: readonly K8sObject[], kind: string): K8sObject | undefined {
  return objects.find((object) => object.kind === kind);
}
