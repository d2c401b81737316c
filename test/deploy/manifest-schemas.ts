/**
 * Validates rendered Kubernetes objects offline: core kinds with `kubernetes-models`, KEDA and Prometheus Operator
 * kinds with their `@kubernetes-models` packages, InferencePool and InferenceObjective against the openAPIV3Schema
 * of their CRDs in ../shared/k8s/crds (read there, never copied).
 *
 * The API server prunes or rejects fields its schema does not know, but these validators accept them, so a
 * misspelt field (`paht`, `cooldownPerod`) would pass and silently do nothing. Unknown keys are found by asking the
 * validator itself: it reads every property its schema declares, and the object is wrapped in a proxy that
 * records each read. A key of the object that the validator never read is one the schema does not know.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ObjectMeta } from "@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { Ajv, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Service } from "kubernetes-models/v1/Service";
import { parse } from "yaml";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const CRD_DIR = path.resolve(repoRoot, "../shared/k8s/crds");

// biome-ignore lint/suspicious/noExplicitAny: manifests are arbitrary YAML that the tests reach into.
type Yaml = any;

/** A rendered Kubernetes object. */
export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [key: string]: Yaml };
  [key: string]: Yaml;
};

/** Reads `this` (the object) and throws a ValidationError naming each failure: the models' validate(). */
type ModelValidate = (this: unknown) => void;

const MODELS: Record<string, ModelValidate> = {
  "apps/v1/Deployment": Deployment.prototype.validate,
  "v1/Service": Service.prototype.validate,
  "v1/ConfigMap": ConfigMap.prototype.validate,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget.prototype.validate,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler.prototype.validate,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject.prototype.validate,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor.prototype.validate,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor.prototype.validate,
};

const CRD_FILES: Record<string, string> = {
  "inference.networking.k8s.io/v1/InferencePool": "inference.networking.k8s.io_inferencepools.yaml",
  "llm-d.ai/v1alpha2/InferenceObjective": "llm-d.ai_inferenceobjectives.yaml",
};

/**
 * The prometheus scaler's metadata keys (KEDA's documentation): the ScaledObject schema types trigger metadata as
 * a free string map, so its keys are checked here.
 */
const PROMETHEUS_TRIGGER_KEYS = new Set([
  "serverAddress",
  "query",
  "queryParameters",
  "threshold",
  "activationThreshold",
  "namespace",
  "customHeaders",
  "ignoreNullValues",
  "unsafeSsl",
  "timeout",
  "authModes",
]);

/** Wraps `value` so that every own property read through it is recorded in `read` by its JSON pointer. */
function recordReads(value: unknown, pointer: string, read: Set<string>): unknown {
  if (value === null || typeof value !== "object") return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      const child: unknown = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || !Object.hasOwn(target, key)) return child;
      read.add(`${pointer}/${key}`);
      return recordReads(child, `${pointer}/${key}`, read);
    },
  });
}

/** JSON pointers of the object's keys (array elements excepted) that no validator read. */
function unreadKeys(value: unknown, pointer: string, read: ReadonlySet<string>, found: string[]): string[] {
  if (value === null || typeof value !== "object") return found;
  for (const [key, child] of Object.entries(value)) {
    const childPointer = `${pointer}/${key}`;
    if (!Array.isArray(value) && !read.has(childPointer)) found.push(childPointer);
    else unreadKeys(child, childPointer, read, found);
  }
  return found;
}

const crdValidators = new Map<string, ValidateFunction>();

function crdValidator(type: string): ValidateFunction {
  const cached = crdValidators.get(type);
  if (cached !== undefined) return cached;
  const file = CRD_FILES[type];
  if (file === undefined) throw new Error(`no CRD for ${type}`);
  const crd = parse(readFileSync(path.join(CRD_DIR, file), "utf8"));
  const version = type.split("/").at(-2);
  // biome-ignore lint/suspicious/noExplicitAny: the CRD is YAML.
  const served = crd.spec.versions.find((entry: any) => entry.name === version);
  if (served === undefined) throw new Error(`${file} does not serve ${version}`);
  // strict: false lets ajv skip the x-kubernetes-* extensions; their CEL rules are checked by the API server only.
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats.default(ajv);
  const validate = ajv.compile(served.schema.openAPIV3Schema);
  crdValidators.set(type, validate);
  return validate;
}

/** The kinds this module validates, as apiVersion/kind. */
export function isKnownType(object: K8sObject): boolean {
  const type = `${object.apiVersion}/${object.kind}`;
  return type in MODELS || type in CRD_FILES;
}

/**
 * Every problem with the object: schema violations and keys its schema does not know, each naming the object
 * and the JSON pointer. Empty when the object is valid.
 */
export function validateObject(object: K8sObject): string[] {
  const type = `${object.apiVersion}/${object.kind}`;
  const name = `${object.kind}/${object.metadata?.name}`;
  const read = new Set<string>();
  const problems: string[] = [];
  const model = MODELS[type];
  if (model !== undefined) {
    try {
      model.call(recordReads(object, "", read));
    } catch (error) {
      problems.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  } else if (type in CRD_FILES) {
    const validate = crdValidator(type);
    if (!validate(recordReads(object, "", read))) {
      for (const error of validate.errors ?? []) problems.push(`${name}: ${error.instancePath} ${error.message}`);
    }
    // A CRD types metadata as a bare object; the API server validates it as ObjectMeta.
    try {
      ObjectMeta.prototype.validate.call(recordReads(object.metadata, "/metadata", read));
    } catch (error) {
      problems.push(`${name}: metadata ${error instanceof Error ? error.message : String(error)}`);
    }
  } else {
    return [`${name}: no schema for ${type}`];
  }
  if (problems.length > 0) return problems;
  for (const pointer of unreadKeys(object, "", read, [])) problems.push(`${name}: unknown field ${pointer}`);
  if (object.kind === "ScaledObject") {
    for (const [index, trigger] of (object.spec?.triggers ?? []).entries()) {
      if (trigger.type !== "prometheus") continue;
      for (const key of Object.keys(trigger.metadata ?? {})) {
        if (!PROMETHEUS_TRIGGER_KEYS.has(key)) {
          problems.push(`${name}: unknown prometheus trigger field /spec/triggers/${index}/metadata/${key}`);
        }
      }
    }
  }
  return problems;
}
