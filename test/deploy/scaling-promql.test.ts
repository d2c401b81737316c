/**
 * The scaling queries, as KEDA and prometheus-adapter send them, run by `promtool test rules` against synthetic
 * series shaped like pagoda's real /metrics (its own labels, taken from a live exposition, plus the target labels
 * the Prometheus Operator adds). Needs Debian's prometheus package (CI installs it); without promtool it skips.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { parse, stringify } from "yaml";
import { startFakeServer } from "../helpers/fake-server.ts";
import { hasKubectl, KUBECTL_MISSING, one, REPO_ROOT, renderOverlay } from "./kustomize.ts";

const hasPromtool = spawnSync("promtool", ["--version"]).status === 0;
const skip =
  (!hasPromtool &&
    "PROMTOOL NOT INSTALLED: the scaling queries were NOT checked (CI installs Debian's prometheus package)") ||
  (!hasKubectl() && KUBECTL_MISSING);

const NAMESPACE = "pagoda";
const SCRAPE_INTERVAL = "15s";

/** pagoda's labels on vllm:num_requests_waiting, from a live exposition: {model_name, engine}. */
async function exportedLabels(): Promise<Record<string, string>> {
  const server = await startFakeServer();
  try {
    const body = (await server.app.inject({ method: "GET", url: "/metrics" })).body;
    const line = body.split("\n").find((entry) => entry.startsWith("vllm:num_requests_waiting{"));
    assert.ok(line !== undefined, "pagoda exports vllm:num_requests_waiting");
    const labels: Record<string, string> = {};
    for (const [, key, value] of line.matchAll(/(\w+)="([^"]*)"/g)) labels[key as string] = value as string;
    return labels;
  } finally {
    await server.app.close();
  }
}

function series(labels: Record<string, string>, values: string): { series: string; values: string } {
  const matchers = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  return { series: `vllm:num_requests_waiting{${matchers.join(",")}}`, values };
}

/** prometheus-adapter's expansion of a metricsQuery for one external metric request. */
function expandAdapterQuery(template: string, metric: string, matchers: Record<string, string>): string {
  const labelMatchers = Object.entries(matchers)
    .map(([key, value]) => `${key}="${value}"`)
    .join(",");
  return template.replaceAll("<<.Series>>", metric).replaceAll("<<.LabelMatchers>>", labelMatchers);
}

test("KEDA's query and the adapter's rule sum the waiting requests of the served model and nothing else", {
  skip,
}, async (t) => {
  const exported = await exportedLabels();
  assert.deepEqual(Object.keys(exported).sort(), ["engine", "model_name"]);

  const keda = renderOverlay("keda");
  const trigger = one(keda, "ScaledObject").spec.triggers[0];
  const threshold = Number(trigger.metadata.threshold);
  const hpa = one(renderOverlay("hpa"), "HorizontalPodAutoscaler");
  const selector = hpa.spec.metrics[0].external.metric.selector.matchLabels as Record<string, string>;
  const model = selector.model_name as string;
  const rule = parse(
    readFileSync(path.join(REPO_ROOT, "deploy/k8s/components/hpa/prometheus-adapter-values.yaml"), "utf8"),
  ).rules.external[0];
  const metric = /^\^?(.*?)\$?$/.exec(rule.name.matches)?.[1] ?? "";
  const adapterQuery = expandAdapterQuery(rule.metricsQuery, metric, { ...selector, namespace: NAMESPACE });

  const target = (pod: string, labels: Record<string, string> = {}) => ({
    ...exported,
    model_name: model,
    namespace: NAMESPACE,
    pod,
    job: `${NAMESPACE}/pagoda`,
    instance: `${pod}:8080`,
    ...labels,
  });
  // Three replicas of the model: 0 waiting, then a burst (2+5+7 = 14), then draining back to 1.
  const inputSeries = [
    series(target("pagoda-a"), "0 2 2 0"),
    series(target("pagoda-b"), "0 5 5 1"),
    series(target("pagoda-c"), "0 7 7 0"),
    // Another model in the same namespace and the same model in another namespace: never counted.
    series(target("other-a", { model_name: "another-model" }), "9 9 9 9"),
    series(target("pagoda-x", { namespace: "staging" }), "4 4 4 4"),
  ];
  const at = (step: number, expr: string, value: number) => ({
    expr,
    eval_time: `${15 * step}s`,
    exp_samples: [{ labels: "{}", value }],
  });
  const tests = {
    rule_files: [],
    // promtool evaluates expressions on this grid: it must be as fine as the samples.
    evaluation_interval: SCRAPE_INTERVAL,
    tests: [
      {
        interval: SCRAPE_INTERVAL,
        input_series: inputSeries,
        promql_expr_test: [
          // KEDA's query names only the model, so it spans namespaces (deploy/k8s/README.md says so); the
          // adapter adds the HPA's namespace.
          at(0, trigger.metadata.query, 4),
          at(1, trigger.metadata.query, 18),
          at(3, trigger.metadata.query, 5),
          at(0, adapterQuery, 0),
          at(1, adapterQuery, 14),
          at(3, adapterQuery, 1),
          // The HPA's arithmetic for AverageValue: ceil(sum / target) replicas.
          at(1, `ceil(${adapterQuery} / ${threshold})`, Math.ceil(14 / threshold)),
          // The adapter's discovery query finds the series, pagoda's labels included.
          at(1, `count(${rule.seriesQuery})`, inputSeries.length),
        ],
      },
    ],
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), "pagoda-promtool-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "scaling.test.yaml");
  writeFileSync(file, stringify(tests));
  const result = spawnSync("promtool", ["test", "rules", file], { encoding: "utf8" });
  assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
});
