/**
 * Every PromQL query of the shipped Grafana dashboard runs against a real Prometheus that scraped a live pagoda
 * serving stories260K. Needs Debian's `prometheus` package (prometheus and promtool); CI installs it, and where
 * it is missing the test says so loudly and skips.
 */

import assert from "node:assert/strict";
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { STORIES_ID, startModelServer } from "../helpers/model-server.ts";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** Grafana variables, as the dashboard would resolve them for this server. */
const VARIABLES: Record<string, string> = { $model_name: STORIES_ID, $__rate_interval: "1m" };

interface DashboardQuery {
  readonly panel: string;
  readonly expr: string;
}

async function dashboardQueries(): Promise<DashboardQuery[]> {
  const dashboard = JSON.parse(await readFile(path.join(repoRoot, "deploy/grafana/pagoda-dashboard.json"), "utf8")) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  return dashboard.panels.flatMap((panel) =>
    panel.targets.map((target) => ({ panel: panel.title, expr: target.expr })),
  );
}

function hasCommand(command: string): boolean {
  try {
    execFileSync(command, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Waits (bounded) for Prometheus, an external process, to have scraped `count` times. */
async function waitForScrapes(prometheusUrl: string, count: number, deadlineMs: number): Promise<void> {
  const query = encodeURIComponent('count_over_time(up{job="pagoda"}[5m])');
  while (Date.now() < deadlineMs) {
    try {
      const response = await fetch(`${prometheusUrl}/api/v1/query?query=${query}`);
      const body = (await response.json()) as { data?: { result?: { value: [number, string] }[] } };
      if (Number(body.data?.result?.[0]?.value[1] ?? 0) >= count) return;
    } catch {
      // Prometheus is still starting.
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`Prometheus did not scrape pagoda ${count} times in time`);
}

test("every dashboard query runs against a Prometheus that scraped a live pagoda", async (t) => {
  if (!hasCommand("prometheus") || !hasCommand("promtool")) {
    t.diagnostic(
      "PROMETHEUS NOT INSTALLED: dashboard queries were NOT checked (CI installs Debian's prometheus package)",
    );
    t.skip("prometheus and promtool are not installed");
    return;
  }
  const server = await startModelServer(["--parallel", "4", "--ctx-size", "256"]);
  const directory = await mkdtemp(path.join(os.tmpdir(), "pagoda-prometheus-"));
  let prometheus: ChildProcess | null = null;
  try {
    const target = new URL(server.baseUrl).host;
    await writeFile(
      path.join(directory, "prometheus.yml"),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pagoda\n    static_configs:\n      - targets: ["${target}"]\n`,
    );
    const port = await freePort();
    const prometheusUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      "prometheus",
      [
        `--config.file=${path.join(directory, "prometheus.yml")}`,
        `--storage.tsdb.path=${path.join(directory, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: "ignore" },
    );
    const generate = async (): Promise<void> => {
      await server.client.completions.create({
        model: STORIES_ID,
        prompt: "Once upon a time",
        max_tokens: 16,
        temperature: 0,
      });
      await server.client.chat.completions.create({
        model: STORIES_ID,
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 8,
      });
      await fetch(`${server.baseUrl}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
    };
    const deadline = Date.now() + 60_000;
    // Traffic between scrapes, so that rates and quantiles have two samples to work with.
    await generate();
    await waitForScrapes(prometheusUrl, 2, deadline);
    await generate();
    await waitForScrapes(prometheusUrl, 4, deadline);

    const results: string[] = [];
    for (const { panel, expr } of await dashboardQueries()) {
      const resolved = Object.entries(VARIABLES).reduce((text, [name, value]) => text.replaceAll(name, value), expr);
      const { stdout } = await run("promtool", ["query", "instant", prometheusUrl, resolved]).catch(
        (error: { stderr?: string }) => {
          throw new Error(`${panel}: ${resolved}\n${error.stderr ?? String(error)}`);
        },
      );
      results.push(`${panel}: ${stdout.trim().split("\n").length} series`);
      if (/throughput|running and waiting|Finished requests|Time to first token/.test(panel)) {
        assert.ok(stdout.trim().length > 0, `${panel} returned no data: ${resolved}`);
      }
    }
    t.diagnostic(results.join("\n"));
    const { stdout: models } = await run("promtool", [
      "query",
      "instant",
      prometheusUrl,
      "count by (model_name) (vllm:num_requests_running)",
    ]);
    assert.match(
      models,
      new RegExp(`model_name="${STORIES_ID}"`),
      "the dashboard's model variable finds the served model",
    );
  } finally {
    prometheus?.kill("SIGTERM");
    await server.close();
    await rm(directory, { recursive: true, force: true });
  }
});
