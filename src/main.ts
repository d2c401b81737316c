/**
 * The server process: read configuration, listen at once (health answers 503 while the model loads), load the
 * model, serve; on SIGTERM or SIGINT close gracefully, on a second signal exit at once.
 */
import { isIP } from "node:net";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { ConfigError } from "./config/config-error.ts";
import type { Config } from "./config/config-schema.ts";
import { loadConfig } from "./config/load-config.ts";
import { isHelpRequested } from "./config/parse-argv.ts";
import { renderHelp } from "./config/render-help.ts";
import { loadLlama } from "./engine/llama-loader.ts";
import { ModelNotFoundError } from "./model/resolve-model.ts";
import type { AppDeps } from "./server/app.ts";
import { resolveApiKeys } from "./server/auth.ts";
import { engineFaultHandler } from "./server/engine-fault.ts";
import { MAX_STOP_STRINGS } from "./server/request-limits.ts";
import { ServingState } from "./server/serving-state.ts";

/** Everything `buildApp` takes from the configuration; `apiKeys` are the resolved keys (flags plus key file). */
export function appDepsFromConfig(config: Config, apiKeys: readonly string[]): Omit<AppDeps, "serving" | "logger"> {
  return {
    serverSeed: config.seed ?? null,
    isEmbeddingsEnabled: config.embeddings,
    hasPooledModels: config.embeddingModel.length + config.rerankModel.length > 0,
    bodyLimitBytes: config.bodyLimit,
    shutdownGraceMs: config.shutdownGraceSeconds * 1000,
    apiKeys,
    isMetricsAuthRequired: config.metricsAuth,
    corsOrigins: config.corsOrigin,
    rateLimit:
      config.rateLimit > 0 ? { maxRequests: config.rateLimit, windowMs: config.rateLimitWindowSeconds * 1000 } : null,
    limits: {
      maxTokens: config.maxTokensLimit,
      maxN: config.maxN,
      maxStopStrings: MAX_STOP_STRINGS,
      maxStopLength: config.maxStopLength,
      maxPromptTokens: config.maxPromptTokens,
    },
    requestTimeoutMs: config.requestTimeoutSeconds * 1000,
    keepAliveTimeoutMs: config.keepAliveTimeoutSeconds * 1000,
    trustProxy: config.trustProxy,
  };
}

/** Starts the server with the given command-line flags. */
export async function runServer(argv: string[]): Promise<void> {
  if (isHelpRequested(argv)) {
    process.stdout.write(renderHelp());
    return;
  }
  let config: Config;
  let apiKeys: string[];
  try {
    config = loadConfig({ argv, env: process.env });
    apiKeys = resolveApiKeys(config.apiKey, config.apiKeyFile);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`pagoda: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  // The native bindings load (and are checked in a child process) while the server's own modules load.
  // Only a head start: the runtime awaits loadLlama again (a failed load is retried there) and reports its error.
  loadLlama(config.gpu).catch(() => undefined);
  const { buildApp } = await import("./server/app.ts");
  const logger = pino({ level: config.logLevel, base: { service: "pagoda" } });
  const serving = new ServingState();
  const app = await buildApp({ serving, logger, ...appDepsFromConfig(config, apiKeys) });
  if (apiKeys.length === 0 && !isLoopback(config.host)) {
    logger.warn(
      { host: config.host },
      "no API key is configured and the server listens beyond loopback: anyone who can reach it can use the model. Set --api-key or --api-key-file.",
    );
  }
  installSignalHandlers(() => app.close(), logger);
  process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled rejection"));

  await app.listen({ host: config.host, port: config.port });
  try {
    const { loadRuntime } = await import("./runtime.ts");
    const runtime = await loadRuntime(config, app.log, {
      onStep: (stats) => app.serverMetrics.observeStep(stats),
      onRequestFinished: (stats) => app.serverMetrics.observeRequest(stats),
      onFatal: engineFaultHandler({ app, serving, exit: (code) => process.exit(code) }),
    });
    serving.markReady(runtime);
  } catch (error) {
    serving.markFailed();
    const message = error instanceof ModelNotFoundError ? error.message : "could not load the model";
    logger.fatal({ err: error }, message);
    await app.close();
    process.exit(1);
  }
  logger.info({ url: listeningUrl(app) }, "pagoda is ready");
}

/** The URL the server actually listens on: with --port 0 the port is only known once bound. */
function listeningUrl(app: FastifyInstance): string {
  const address = app.server.address();
  if (address === null || typeof address === "string") return String(address);
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1" || host === "[::1]";
}

function installSignalHandlers(close: () => Promise<void>, logger: pino.Logger): void {
  let isClosing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (isClosing) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    isClosing = true;
    logger.info({ signal }, "shutting down");
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "error while shutting down");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}
