/**
 * Every kustomization under deploy/k8s renders, and every object it renders is valid for its schema with no field
 * the schema does not know. A misspelt field is proved to fail on each kind of validator.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { hasKubectl, KUBECTL_MISSING, OVERLAYS, one, renderComposed, renderOverlay } from "./kustomize.ts";
import { isKnownType, type K8sObject, validateObject } from "./manifest-schemas.ts";

const isKubectlMissing = !hasKubectl();

/** Everything the components can add, on the CUDA overlay: the widest composition a user would write. */
const FULL_COMPOSITION = [
  "components/gie",
  "components/keda",
  "components/monitoring",
  "components/pod-monitor",
  "components/model-image-volume",
] as const;

function assertAllValid(objects: readonly K8sObject[]): void {
  assert.ok(objects.length > 0);
  for (const object of objects) {
    assert.ok(isKnownType(object), `no validator for ${object.apiVersion} ${object.kind}`);
    assert.deepEqual(validateObject(object), [], `${object.kind}/${object.metadata.name}`);
  }
}

for (const overlay of OVERLAYS) {
  test(`overlay ${overlay} renders objects that are all valid, with no unknown field`, {
    skip: isKubectlMissing && KUBECTL_MISSING,
  }, () => {
    assertAllValid(renderOverlay(overlay));
  });
}

test("the components compose: cuda with gie, keda, monitoring, pod-monitor and an image volume is valid", {
  skip: isKubectlMissing && KUBECTL_MISSING,
}, () => {
  const objects = renderComposed("overlays/cuda", FULL_COMPOSITION);
  assertAllValid(objects);
  const kinds = objects.map((object) => object.kind).sort();
  assert.ok(
    kinds.includes("PodMonitor") && !kinds.includes("ServiceMonitor"),
    "pod-monitor replaces the ServiceMonitor",
  );
  const volume = one(objects, "Deployment").spec.template.spec.volumes.find(
    (entry: K8sObject) => entry.name === "models",
  );
  assert.deepEqual(Object.keys(volume).sort(), ["image", "name"], "the image volume replaces the PVC");
});

test("the init-container model download composes with the cpu overlay and is valid", {
  skip: isKubectlMissing && KUBECTL_MISSING,
}, () => {
  const objects = renderComposed("overlays/cpu", ["components/model-init-container"]);
  assertAllValid(objects);
  const spec = one(objects, "Deployment").spec.template.spec;
  assert.equal(spec.initContainers[0].volumeMounts[0].mountPath, "/models");
  const volume = spec.volumes.find((entry: K8sObject) => entry.name === "models");
  assert.deepEqual(Object.keys(volume).sort(), ["emptyDir", "name"]);
});

/** A deep copy of `object` with `value` set at the dotted `path` (numbers index arrays). */
function withField(object: K8sObject, path: string, value: unknown): K8sObject {
  const copy = structuredClone(object);
  const keys = path.split(".");
  let node = copy as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
  node[keys.at(-1) as string] = value;
  return copy;
}

test("a misspelt field fails on every validator, naming where it is", {
  skip: isKubectlMissing && KUBECTL_MISSING,
}, () => {
  const cpu = renderOverlay("cpu");
  const cases: [K8sObject, string, string][] = [
    [
      one(cpu, "Deployment"),
      "spec.template.spec.containers.0.readinessProbe.httpGet.paht",
      "/spec/template/spec/containers/0/readinessProbe/httpGet/paht",
    ],
    [one(cpu, "Deployment"), "spec.template.spec.terminationGracePeriod", "/spec/template/spec/terminationGracePeriod"],
    [one(cpu, "Service"), "spec.selectors", "/spec/selectors"],
    [one(cpu, "PodDisruptionBudget"), "metadata.label", "/metadata/label"],
    [one(renderOverlay("keda"), "ScaledObject"), "spec.cooldownPerod", "/spec/cooldownPerod"],
    [
      one(renderOverlay("keda"), "ScaledObject"),
      "spec.triggers.0.metadata.treshold",
      "/spec/triggers/0/metadata/treshold",
    ],
    [
      one(renderOverlay("hpa"), "HorizontalPodAutoscaler"),
      "spec.behavior.scaleDown.stabilizationWindow",
      "/spec/behavior/scaleDown/stabilizationWindow",
    ],
    [one(renderOverlay("monitoring"), "ServiceMonitor"), "spec.endpoints.0.intervall", "/spec/endpoints/0/intervall"],
    [one(renderOverlay("gie"), "InferencePool"), "spec.targetPort", "/spec/targetPort"],
    [one(renderOverlay("gie"), "InferencePool"), "metadata.lables", "/metadata/lables"],
    [one(renderOverlay("gie"), "InferenceObjective"), "spec.poolRef.nmae", "/spec/poolRef/nmae"],
  ];
  for (const [object, path, pointer] of cases) {
    assert.deepEqual(validateObject(object), [], `the unaltered ${object.kind} is valid`);
    const problems = validateObject(withField(object, path, "x"));
    assert.ok(
      problems.some((problem) => problem.endsWith(pointer)),
      `${object.kind} with ${path}: ${JSON.stringify(problems)}`,
    );
  }
});

test("a wrong type or value still fails schema validation, for typed models and CRDs alike", {
  skip: isKubectlMissing && KUBECTL_MISSING,
}, () => {
  const gie = renderOverlay("gie");
  const pool = one(gie, "InferencePool");
  assert.match(
    validateObject(withField(pool, "spec.targetPorts", [{ number: 70000 }])).join(),
    /targetPorts\/0\/number/,
  );
  assert.match(
    validateObject(withField(pool, "spec.endpointPickerRef.failureMode", "Sometimes")).join(),
    /failureMode/,
  );
  const deployment = one(gie, "Deployment");
  assert.match(validateObject(withField(deployment, "spec.replicas", "two")).join(), /replicas must be integer/);
});
