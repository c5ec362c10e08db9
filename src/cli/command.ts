// The one way commands start and fail: the global flags become a Config, and whatever a command
// throws becomes a one-line message and an exit code — 2 for usage and configuration errors, 1 for
// failures at run time — never a stack trace.
import { defineCommand, type ArgsDef, type CommandDef, type ParsedArgs } from "citty";
import { ConfigError } from "../config/error.ts";
import { resolveConfig } from "../config/resolve.ts";
import type { Config } from "../config/schema.ts";
import { createLogger, type Logger } from "../log.ts";
import { existsSync } from "node:fs";
import { openStore } from "../server/runtime.ts";
import type { Store } from "../store/types.ts";
import { configFlags, globalArgs, keyArgs } from "./globals.ts";
import type { FlagGroup } from "../config/values.ts";

/** A mistake in how the command was called. */
export class UsageError extends Error {}

export function exitCodeOf(err: unknown): number {
  const name = (err as Error)?.name;
  return err instanceof ConfigError || err instanceof UsageError || name === "CLIError" ? 2 : 1;
}

/** Prints a failure as one line (the cause too, when there is one) and returns its exit code. */
export function reportError(err: unknown): number {
  const e = err as Error & { code?: string };
  // citty colours its messages; a log file or a pipe gets plain text.
  const msg = (e instanceof Error ? e.message : String(err)).replace(/\x1b\[[0-9;]*m/g, "");
  process.stderr.write(`ociregistry: ${msg}\n`);
  return exitCodeOf(err);
}

/** The store a read-only command works on; a path that holds none is an error, not an empty store. */
export async function existingStore(cfg: Config): Promise<Store> {
  if (!cfg.s3 && !existsSync(cfg.imagePath)) throw new Error(`no image store at ${cfg.imagePath}: give --image-path (or imagePath in the config file)`);
  return openStore(cfg);
}

export interface RunContext<A extends ArgsDef> {
  args: ParsedArgs<A & typeof globalArgs>;
  rawArgs: string[];
  cfg: Config;
  log: Logger;
  /** Changes the level of every logger (a config reload). */
  setLogLevel: (level: Config["logLevel"]) => void;
}

/**
 * Defines a subcommand: its own args plus the global ones and the config flags of `keys` (the
 * flag groups of the config schema it takes); `run` returns an exit code (0 when it returns nothing).
 */
export function command<A extends ArgsDef>(def: {
  meta: { name: string; description: string };
  args: A;
  keys?: FlagGroup[];
  run: (ctx: RunContext<A>) => Promise<number | void> | number | void;
}): CommandDef<A & typeof globalArgs> {
  return defineCommand({
    meta: def.meta,
    args: { ...globalArgs, ...Object.assign({}, ...(def.keys ?? []).map(keyArgs)), ...def.args } as A & typeof globalArgs,
    async run({ args, rawArgs }) {
      let code: number;
      try {
        const cfg = resolveConfig(configFlags(args, def.keys ?? []));
        const { log, reopen, setLevel } = createLogger({ level: cfg.logLevel, format: cfg.logFormat, file: cfg.logFile });
        // logrotate moves the file, then sends SIGHUP: write to a new one from then on.
        if (cfg.logFile) process.on("SIGHUP", reopen);
        code = (await def.run({ args, rawArgs, cfg, log, setLogLevel: setLevel })) ?? 0;
      } catch (err) {
        code = reportError(err);
      }
      if (code !== 0) process.exit(code);
    },
  });
}
