// A config reload (SIGHUP, POST /api/v1/reload): the file and the files it names are read again
// and checked; a config that fails is refused whole and the running one stays. Of what changed,
// the keys that can change in a running process are applied; the others are named as needing a
// restart, never silently ignored.
import { ConfigError } from "../config/error.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log.ts";

/** Keys a running server takes on a reload (`users` includes the htpasswd file's, `registries` the docker config's credentials). */
export const RELOADABLE = ["logLevel", "registries", "dockerConfig", "users", "serverTlsConfig", "pruneConfig", "maxSize", "minFreeSpace", "pinned"] as const;
type Reloadable = (typeof RELOADABLE)[number];

/** The config file's name of a key of the program's Config. */
const FILE_KEY: Partial<Record<keyof Config, string>> = {
  s3: "store/s3", healthPort: "health", adminToken: "admin", users: "users/htpasswd", tagPolicies: "tagPolicies/alwaysPullLatest",
  pullTimeoutMs: "pullTimeout", revalidateAfterMs: "revalidateAfter", transferRateWindowMs: "transferRateWindow",
  shutdownDelayMs: "shutdownDelay", drainTimeoutMs: "drainTimeout",
};
export const fileKey = (k: keyof Config) => FILE_KEY[k] ?? k;

export interface ConfigChanges {
  /** Keys whose new values the server took. */
  applied: Reloadable[];
  /** Keys that changed but take effect only after a restart (config file names). */
  restart: string[];
}

/** What differs between the running config and the one read again, split by whether a reload can apply it. */
export function configChanges(running: Config, next: Config): ConfigChanges {
  const keys = new Set([...Object.keys(running), ...Object.keys(next)] as (keyof Config)[]);
  const applied: Reloadable[] = [];
  const restart: string[] = [];
  for (const k of keys) {
    if (Bun.deepEquals(running[k], next[k])) continue;
    // A plain port cannot become a TLS one (nor back) without a new listener on another socket type.
    const tlsSwitch = k === "serverTlsConfig" && (!running.serverTlsConfig || !next.serverTlsConfig);
    if ((RELOADABLE as readonly string[]).includes(k) && !tlsSwitch) applied.push(k as Reloadable);
    else restart.push(fileKey(k));
  }
  return { applied, restart };
}

export type ReloadOutcome = { ok: true; changes: ConfigChanges } | { ok: false; error: string };

/**
 * Runs reloads one at a time: `reread` builds the config again (throws ConfigError when it fails
 * validation), `apply` makes the running server take the keys that changed (a throw refuses the
 * reload, so it must throw before it changes anything).
 */
export function createReloader(o: {
  running: () => Config;
  reread: () => Config;
  apply: (next: Config, changes: ConfigChanges) => void;
  log: Logger;
}) {
  let queue: Promise<unknown> = Promise.resolve();

  function once(source: string): ReloadOutcome {
    let next: Config;
    let changes: ConfigChanges;
    try {
      next = o.reread();
      changes = configChanges(o.running(), next);
      // apply() does what can fail first (a certificate that does not load) and changes nothing then.
      o.apply(next, changes);
    } catch (err) {
      // One line: what is wrong, and that nothing changed.
      const error = err instanceof ConfigError ? err.message : `cannot apply the config: ${(err as Error).message.split("\n")[0]}`;
      o.log.error(`reload (${source}) refused, the running config stays: ${error}`);
      return { ok: false, error };
    }
    o.log.info(`reload (${source}): ${changes.applied.length ? `applied ${changes.applied.join(", ")}` : "nothing to apply"}`);
    if (changes.restart.length) o.log.warn(`reload (${source}): ${changes.restart.join(", ")} changed and take effect only after a restart`);
    return { ok: true, changes };
  }

  return {
    /** Reads the config again and applies it; never throws. */
    reload(source: string): Promise<ReloadOutcome> {
      const run = queue.then(() => once(source));
      queue = run.catch(() => {});
      return run;
    },
  };
}
