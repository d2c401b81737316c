/**
 * The server process: read configuration, listen at once (health answers 503 while the model loads), load the
 * model, serve; on SIGTERM or SIGINT close gracefully, on a second signal exit at once.
 */
import { pathToFileURL } from "node:url";
import pino from "pino";
import { ConfigError } from "./config/config-error.ts";
import { isHelpRequested, loadConfig, renderHelp } from "./config/load-config.ts";
import { ModelNotFoundError } from "./model/resolve-model.ts";
import { loadRuntime } from "./runtime.ts";
import { buildApp } from "./server/app.ts";
import { ServingState } from "./server/serving-state.ts";

/** Starts the server with the given command-line flags. */
export async function runServer(argv: string[]): Promise<void> {
  if (isHelpRequested(argv)) {
    process.stdout.write(renderHelp());
    return;
  }
  let config;
  try {
    config = loadConfig({ argv, env: process.env });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`pagoda: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = pino({ level: config.logLevel, base: { service: "pagoda" } });
  const serving = new ServingState();
  const app = await buildApp({ serving, logger, serverSeed: config.seed ?? null, isEmbeddingsEnabled: config.embeddings });
  installSignalHandlers(() => app.close(), logger);
  process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled rejection"));

  await app.listen({ host: config.host, port: config.port });
  try {
    const runtime = await loadRuntime(config, app.log, {
      onStep: (stats) => app.serverMetrics.observeStep(stats),
      onRequestFinished: (stats) => app.serverMetrics.observeRequest(stats),
      onFatal: () => {
        // Health turns 503 at once; exiting non-zero lets a supervisor restart the process instead of it hanging.
        serving.markFailed();
        app.close().finally(() => process.exit(1));
      },
    });
    serving.markReady(runtime);
  } catch (error) {
    serving.markFailed();
    const message = error instanceof ModelNotFoundError ? error.message : "could not load the model";
    logger.fatal({ err: error }, message);
    await app.close();
    process.exit(1);
  }
  logger.info({ url: `http://${config.host}:${config.port}` }, "pagoda is ready");
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

/** True when this file is the process entry (`npm start`), not imported by the CLI. */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && import.meta.url === pathToFileURL(entry).href;
}

if (isEntryPoint()) {
  runServer(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`pagoda: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
