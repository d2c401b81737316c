/**
 * The rendered manifests agree with each other and with the server: selectors pick the pod template's labels,
 * ports and names match, the PAGODA_* settings are real and load, probe paths answer as the probes need, the
 * termination grace covers the drain, the autoscalers wait out a model load, and only the CUDA overlay asks for
 * a GPU.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import type { Config } from "../../src/config/config-schema.ts";
import { loadConfig } from "../../src/config/load-config.ts";
import { SETTING_NAMES } from "../../src/config/setting-names.ts";
import { buildApp, FINAL_WRITE_MS } from "../../src/server/app.ts";
import { ServingState } from "../../src/server/serving-state.ts";
import { startFakeServer } from "../helpers/fake-server.ts";
import {
  hasKubectl,
  KUBECTL_MISSING,
  maybeOne,
  OVERLAYS,
  type Overlay,
  one,
  REPO_ROOT,
  renderComposed,
  renderOverlay,
} from "./kustomize.ts";
import type { K8sObject } from "./manifest-schemas.ts";

const skip = !hasKubectl() && KUBECTL_MISSING;
const KNOWN_VARIABLES = new Set(Object.values(SETTING_NAMES).flatMap((names) => [names.env, names.former?.env]));
/** The least time between pagoda exiting and the kubelet's SIGKILL. */
const MIN_MARGIN_SECONDS = 5;

const rendered = new Map<Overlay, K8sObject[]>();
function objectsOf(overlay: Overlay): K8sObject[] {
  let objects = rendered.get(overlay);
  if (objects === undefined) {
    objects = renderOverlay(overlay);
    rendered.set(overlay, objects);
  }
  return objects;
}

function podTemplate(objects: readonly K8sObject[]): K8sObject {
  return one(objects, "Deployment", "pagoda").spec.template;
}

function container(objects: readonly K8sObject[]): K8sObject {
  return podTemplate(objects).spec.containers.find((entry: K8sObject) => entry.name === "pagoda");
}

/** The container's environment, every value given literally. */
function environment(objects: readonly K8sObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container(objects).env) {
    assert.equal(typeof variable.value, "string", `${variable.name} has a literal value`);
    env[variable.name] = variable.value;
  }
  return env;
}

/** pagoda's configuration as the container would load it. */
function configOf(objects: readonly K8sObject[]): Config {
  return loadConfig({ argv: container(objects).args ?? [], env: environment(objects), cwd: "/app" });
}

function assertSelects(selector: Record<string, string>, labels: Record<string, string>, what: string): void {
  assert.ok(Object.keys(selector).length > 0, `${what} selects something`);
  for (const [key, value] of Object.entries(selector)) assert.equal(labels[key], value, `${what}: ${key}`);
}

function startupBudgetSeconds(objects: readonly K8sObject[]): number {
  const probe = container(objects).startupProbe;
  return probe.periodSeconds * probe.failureThreshold;
}

for (const overlay of OVERLAYS) {
  test(`${overlay}: every PAGODA_* variable is a real setting and the container's configuration loads`, {
    skip,
  }, () => {
    const objects = objectsOf(overlay);
    for (const name of Object.keys(environment(objects))) {
      if (name.startsWith("PAGODA_")) assert.ok(KNOWN_VARIABLES.has(name), `${name} is not a pagoda setting`);
    }
    const config = configOf(objects);
    assert.equal(config.host, "0.0.0.0");
    assert.equal(config.metricsAuth, false, "the endpoint picker scrapes /metrics without a token");
    assert.ok(config.modelAlias !== undefined, "--model-alias names the model clients send");
  });

  test(`${overlay}: selectors pick the pod template's labels and ports match by name and number`, { skip }, () => {
    const objects = objectsOf(overlay);
    const labels = podTemplate(objects).metadata.labels;
    const deployment = one(objects, "Deployment", "pagoda");
    assertSelects(deployment.spec.selector.matchLabels, labels, "Deployment");
    assertSelects(one(objects, "PodDisruptionBudget").spec.selector.matchLabels, labels, "PodDisruptionBudget");
    const service = one(objects, "Service", "pagoda");
    assertSelects(service.spec.selector, labels, "Service");
    assert.equal(labels["llm-d.ai/engine-type"], "vllm", "the endpoint picker reads vLLM's metric names");
    const ports = container(objects).ports;
    assert.deepEqual(
      ports.map((port: K8sObject) => port.name),
      ["http"],
    );
    const config = configOf(objects);
    assert.equal(ports[0].containerPort, config.port, "the container port is the port pagoda listens on");
    assert.equal(service.spec.ports[0].targetPort, "http");
    const pool = maybeOne(objects, "InferencePool");
    if (pool !== undefined) {
      assert.deepEqual(pool.spec.selector.matchLabels, labels, "the pool selects exactly the pod template's labels");
      assert.deepEqual(pool.spec.targetPorts, [{ number: config.port }]);
      assert.equal(one(objects, "InferenceObjective").spec.poolRef.name, pool.metadata.name);
    }
    const monitor = maybeOne(objects, "ServiceMonitor");
    if (monitor !== undefined) {
      assertSelects(monitor.spec.selector.matchLabels, service.metadata.labels, "ServiceMonitor");
      assert.equal(monitor.spec.endpoints[0].port, service.spec.ports[0].name);
    }
  });

  test(`${overlay}: the models volume is mounted read-only at PAGODA_MODELS_DIR and the model is in it`, {
    skip,
  }, () => {
    const objects = objectsOf(overlay);
    const config = configOf(objects);
    const mount = container(objects).volumeMounts.find((entry: K8sObject) => entry.name === "models");
    assert.equal(mount.mountPath, config.modelsDir);
    assert.equal(mount.readOnly, true);
    assert.equal(path.dirname(config.model ?? ""), config.modelsDir);
    const volume = podTemplate(objects).spec.volumes.find((entry: K8sObject) => entry.name === "models");
    assert.equal(volume.persistentVolumeClaim?.readOnly, true);
  });

  test(`${overlay}: non-root with a read-only root filesystem, the cache dir and /tmp on emptyDirs`, { skip }, () => {
    const objects = objectsOf(overlay);
    const spec = podTemplate(objects).spec;
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.ok(spec.securityContext.runAsUser > 0);
    assert.equal(spec.enableServiceLinks, false);
    const security = container(objects).securityContext;
    assert.equal(security.readOnlyRootFilesystem, true);
    assert.equal(security.allowPrivilegeEscalation, false);
    const emptyDirs = new Set(
      spec.volumes.filter((v: K8sObject) => v.emptyDir !== undefined).map((v: K8sObject) => v.name),
    );
    const writable = container(objects)
      .volumeMounts.filter((mount: K8sObject) => emptyDirs.has(mount.name))
      .map((mount: K8sObject) => mount.mountPath);
    assert.deepEqual(writable.sort(), [configOf(objects).cacheDir, "/tmp"].sort());
  });

  test(`${overlay}: the termination grace covers preStop, the shutdown grace and the final writes`, { skip }, () => {
    const objects = objectsOf(overlay);
    const preStopSeconds = container(objects).lifecycle.preStop.sleep.seconds;
    const needed = preStopSeconds + configOf(objects).shutdownGraceSeconds + FINAL_WRITE_MS / 1000 + MIN_MARGIN_SECONDS;
    assert.ok(preStopSeconds >= 5, "the endpoint picker and kube-proxy get time to drop the pod");
    assert.ok(
      podTemplate(objects).spec.terminationGracePeriodSeconds >= needed,
      `terminationGracePeriodSeconds ${podTemplate(objects).spec.terminationGracePeriodSeconds} < ${needed}`,
    );
  });

  test(`${overlay}: a GPU is requested exactly when the overlay is cuda, and pagoda is told which`, { skip }, () => {
    const objects = objectsOf(overlay);
    const resources = container(objects).resources;
    const gpus = resources.limits?.["nvidia.com/gpu"];
    assert.equal(gpus !== undefined, overlay === "cuda");
    assert.equal(configOf(objects).gpu, overlay === "cuda" ? "cuda" : "false");
    if (overlay !== "cuda") {
      // pagoda counts the node's cores, not the limit: its threads must leave the event loop a core.
      assert.ok(configOf(objects).threads < Number(resources.limits.cpu));
      assert.deepEqual(resources.requests, resources.limits, "Guaranteed QoS");
    }
  });
}

test("the autoscalers scale on the served model's queue and wait out a model load before scaling down", {
  skip,
}, () => {
  const keda = objectsOf("keda");
  const alias = configOf(keda).modelAlias;
  const scaled = one(keda, "ScaledObject");
  assert.equal(scaled.spec.scaleTargetRef.name, "pagoda");
  const trigger = scaled.spec.triggers[0];
  assert.equal(trigger.metricType, "AverageValue");
  assert.equal(trigger.metadata.query, `sum(vllm:num_requests_waiting{model_name="${alias}"})`);
  assert.ok(Number(trigger.metadata.threshold) > 0 && trigger.metadata.activationThreshold !== undefined);
  const budget = Math.max(startupBudgetSeconds(keda), startupBudgetSeconds(objectsOf("cuda")));
  assert.ok(scaled.spec.cooldownPeriod > budget, "cooldown longer than a model load");
  const kedaDown = scaled.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown;
  assert.ok(kedaDown.stabilizationWindowSeconds > budget);

  const hpaObjects = objectsOf("hpa");
  const hpa = one(hpaObjects, "HorizontalPodAutoscaler");
  const external = hpa.spec.metrics[0].external;
  assert.deepEqual(external.metric.selector.matchLabels, { model_name: configOf(hpaObjects).modelAlias });
  assert.deepEqual(external.target, { type: "AverageValue", averageValue: trigger.metadata.threshold });
  assert.deepEqual(hpa.spec.behavior, scaled.spec.advanced.horizontalPodAutoscalerConfig.behavior);
  const adapter = parse(
    readFileSync(path.join(REPO_ROOT, "deploy/k8s/components/hpa/prometheus-adapter-values.yaml"), "utf8"),
  );
  assert.equal(adapter.rules.external[0].name.as, external.metric.name, "the HPA reads the adapter's renamed metric");
  for (const objects of [keda, hpaObjects]) {
    assert.equal(one(objects, "Deployment").spec.replicas, undefined, "the autoscaler owns the replica count");
  }
});

test("the endpoint picker's configuration uses the vllm profile, the prefix-cache scorer and pagoda's /metrics", {
  skip,
}, () => {
  const objects = objectsOf("gie");
  const config = parse(one(objects, "ConfigMap", "pagoda-epp-config").data["epp-config.yaml"]);
  assert.equal(config.kind, "EndpointPickerConfig");
  const known = ["apiVersion", "kind", "plugins", "schedulingProfiles", "dataLayer", "featureGates", "flowControl"];
  for (const key of Object.keys(config)) assert.ok(known.includes(key), `unknown key ${key}`);
  const plugins = new Map<string, K8sObject>();
  for (const plugin of config.plugins) {
    for (const key of Object.keys(plugin)) assert.ok(["name", "type", "parameters"].includes(key), `plugin key ${key}`);
    plugins.set(plugin.name ?? plugin.type, plugin);
  }
  const references = [
    ...config.schedulingProfiles.flatMap((profile: K8sObject) =>
      profile.plugins.map((entry: K8sObject) => entry.pluginRef),
    ),
    ...config.dataLayer.sources.flatMap((source: K8sObject) => [
      source.pluginRef,
      ...source.extractors.map((extractor: K8sObject) => extractor.pluginRef),
    ]),
  ];
  for (const reference of references) assert.ok(plugins.has(reference), `${reference} is declared`);
  assert.ok(references.includes("prefix-cache-scorer"));
  const extractor = plugins.get("core-metrics-extractor")?.parameters;
  const labels = podTemplate(objects).metadata.labels;
  assert.equal(labels[extractor.engineLabelKey], extractor.defaultEngine);
  assert.equal(extractor.defaultEngine, "vllm");
  assert.deepEqual(plugins.get("metrics-data-source")?.parameters, { scheme: "http", path: "/metrics/router" });
});

test("the Grafana dashboard ConfigMap is generated from deploy/grafana's file, labelled for the sidecar", {
  skip,
}, () => {
  const configMap = one(objectsOf("monitoring"), "ConfigMap", "pagoda-dashboard");
  assert.equal(configMap.metadata.labels.grafana_dashboard, "1");
  const file = readFileSync(path.join(REPO_ROOT, "deploy/grafana/pagoda-dashboard.json"), "utf8");
  assert.equal(configMap.data["pagoda-dashboard.json"], file);
});

test("the probe paths answer as the probes need: readiness 503 and liveness 200 while loading, all 200 when ready", {
  skip,
}, async (t) => {
  const probes = container(objectsOf("cpu"));
  const startup = probes.startupProbe.httpGet.path;
  const readiness = probes.readinessProbe.httpGet.path;
  const liveness = probes.livenessProbe.httpGet.path;
  for (const probe of [probes.startupProbe, probes.readinessProbe, probes.livenessProbe]) {
    assert.equal(probe.httpGet.port, "http");
  }
  const loading = await buildApp({ serving: new ServingState(), apiKeys: ["key"] });
  t.after(() => loading.close());
  assert.equal((await loading.inject({ method: "GET", url: startup })).statusCode, 503);
  assert.equal((await loading.inject({ method: "GET", url: readiness })).statusCode, 503);
  assert.equal((await loading.inject({ method: "GET", url: liveness })).statusCode, 200);

  const ready = await startFakeServer({}, { apiKeys: ["key"] });
  t.after(() => ready.app.close());
  for (const url of [startup, readiness, liveness]) {
    assert.equal((await ready.app.inject({ method: "GET", url })).statusCode, 200, url);
  }
  const monitorPath = one(objectsOf("monitoring"), "ServiceMonitor").spec.endpoints[0].path;
  const eppConfig = parse(one(objectsOf("gie"), "ConfigMap", "pagoda-epp-config").data["epp-config.yaml"]);
  const pickerPath = eppConfig.plugins.find((plugin: K8sObject) => plugin.type === "metrics-data-source").parameters
    .path;
  for (const url of [monitorPath, pickerPath]) {
    const metrics = await ready.app.inject({ method: "GET", url });
    assert.equal(metrics.statusCode, 200, `${url} needs no key`);
    for (const name of ["num_requests_waiting", "num_requests_running", "kv_cache_usage_perc", "cache_config_info"]) {
      assert.match(metrics.body, new RegExp(`^vllm:${name}\\{`, "m"), `${url}: the vllm profile reads vllm:${name}`);
    }
  }
});

test("the PodMonitor selects the pod template's labels and its named port", { skip }, () => {
  const objects = renderComposed("overlays/monitoring", ["components/pod-monitor"]);
  const monitor = one(objects, "PodMonitor");
  assertSelects(monitor.spec.selector.matchLabels, podTemplate(objects).metadata.labels, "PodMonitor");
  assert.equal(monitor.spec.podMetricsEndpoints[0].port, container(objects).ports[0].name);
  assert.equal(maybeOne(objects, "ServiceMonitor"), undefined);
});
