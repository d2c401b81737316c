/**
 * The configuration from all its sources, merged: defaults < `--config` file < `PAGODA_*` environment < flags.
 * Each source is read and validated by its own module; this one merges them and resolves paths.
 */
import { ConfigError } from "./config-error.ts";
import { type Config, type ConfigKey, ConfigSchema } from "./config-schema.ts";
import { parseArgv } from "./parse-argv.ts";
import { readConfigFile } from "./read-config-file.ts";
import { readEnv } from "./read-env.ts";
import { PATH_KEYS, resolvePath } from "./resolve-path.ts";

export interface LoadConfigOptions {
  /** Command-line arguments without the node and script paths, i.e. `process.argv.slice(2)`. */
  argv: string[];
  /** Environment read for `PAGODA_*` variables, usually `process.env`. */
  env: NodeJS.ProcessEnv;
  /**
   * Directory against which `--config` and relative paths from flags,
   * environment and defaults are resolved. Defaults to `process.cwd()`.
   */
  cwd?: string;
}

/**
 * Builds the configuration from, in increasing precedence: schema defaults,
 * the JSON file given by `--config`, `PAGODA_*` environment variables, and
 * command-line flags. Every supplied value is validated, even one that a
 * higher-precedence source overrides, so a typo never lies dormant.
 * Relative paths are made absolute: file values against the file's
 * directory, everything else against `cwd`.
 *
 * @throws {ConfigError} naming the offending setting as the user wrote it.
 */
export function loadConfig(options: LoadConfigOptions): Config {
  const cwd = options.cwd ?? process.cwd();
  const args = parseArgv(options.argv, cwd);
  const settings = [
    ...(args.configPath === undefined ? [] : readConfigFile(args.configPath, cwd)),
    ...readEnv(options.env, cwd),
    ...args.settings,
  ];

  const merged: Partial<Record<ConfigKey, unknown>> = {};
  for (const { key, value, baseDir } of settings) {
    merged[key] = PATH_KEYS.includes(key) ? resolvePath(baseDir, value as string) : value;
  }
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    // Each value was checked on entry, so this only fires if the schema gains cross-key rules.
    throw new ConfigError(`invalid configuration: ${result.error.message}`, { cause: result.error });
  }
  const config = result.data;
  config.modelsDir = resolvePath(cwd, config.modelsDir);
  config.cacheDir = resolvePath(cwd, config.cacheDir);
  return config;
}
