// Builds the effective Config: the YAML file checked against the schema (defaults filled in), then
// command-line flags checked by the same schema, then the files and environment variables the
// keys name. Every problem is reported with the key (or flag) it concerns, e.g.
// `registries[0].scheme: must be http or https`, `--port: must be a port number 0-65535, got "x"`.
import { readFileSync } from "node:fs";
import * as v from "valibot";
import { ConfigError } from "./error.ts";
import { flagName, flagOf } from "./flags.ts";
import { mergeOutsideCredentials } from "./credentials.ts";
import { configSchema, entries, type Config, type ConfigFile, type ConfigKey, type Credentials, type RegistryEntry, type S3Config } from "./schema.ts";
import { httpUrl, isObject, readFileText, type Raw } from "./values.ts";
import { REPLICA_SECRET_MIN } from "./sections.ts";

export { ConfigError };

/** Flag values as the CLI parsed them, by the config key they set; undefined means "not given". */
export type ConfigFlags = { configFile?: string } & { [K in ConfigKey]?: string | boolean | number };

type Env = Record<string, string | undefined>;

/** `registries[1].tls.ca` from an issue's path. */
function keyOf(issue: v.BaseIssue<unknown>, prefix = ""): string {
  let key = prefix;
  for (const item of issue.path ?? []) key += typeof item.key === "number" ? `[${item.key}]` : `${key ? "." : ""}${String(item.key)}`;
  return key;
}

/** Checks a value against a schema; the first problem becomes a ConfigError naming its key. */
export function check<S extends v.GenericSchema>(schema: S, value: unknown, name: (issue: v.BaseIssue<unknown>) => string): v.InferOutput<S> {
  const r = v.safeParse(schema, value);
  if (r.success) return r.output;
  const issue = r.issues[0];
  throw new ConfigError(name(issue), issue.message);
}

/** Parses YAML config text into its keys; `source` names the file in errors. */
export function parseConfigText(text: string, source: string): Raw {
  let raw: unknown;
  // Loaded on the first config text, not at start: yaml is ~10 MiB of RSS a run without a config file never needs.
  const { parse: parseYaml } = require("yaml") as typeof import("yaml");
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(source, `not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (raw === null || raw === undefined) return {};
  if (!isObject(raw)) throw new ConfigError(source, "must be a YAML mapping of keys");
  return raw;
}

/** Checks config text against the schema alone: no file it names is read, no variable looked up. */
export function checkConfigText(text: string, source: string): ConfigFile {
  return check(configSchema, parseConfigText(text, source), (i) => keyOf(i) || source);
}

export function resolveConfig(flags: ConfigFlags, env: Env = process.env): Config {
  let raw: Raw = {};
  if (flags.configFile) {
    let text: string;
    try {
      text = readFileSync(flags.configFile, "utf8");
    } catch (err) {
      throw new ConfigError("--config-file", `cannot read ${flags.configFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    raw = parseConfigText(text, flags.configFile);
  }
  const file = check(configSchema, raw, (i) => keyOf(i) || String(flags.configFile));
  // A flag overrides the key it mirrors and is checked by that key's schema; errors name it as
  // typed (--image-path). A flag that sets one field of a section (--archives DIR) keeps the rest.
  const names: Partial<Record<ConfigKey, string>> = {};
  for (const key of Object.keys(entries) as ConfigKey[]) {
    const value = flags[key];
    if (value === undefined) continue;
    const sets = flagOf(key)?.sets;
    const fromFile = raw[key];
    names[key] = flagName(key);
    (file as Record<string, unknown>)[key] = check(entries[key], sets ? { ...(isObject(fromFile) ? fromFile : {}), [sets]: value } : value, () => names[key]!);
  }
  const name = (k: ConfigKey) => names[k] ?? k;
  const cfg = toConfig(file, env, name);
  mergeOutsideCredentials(cfg, name("dockerConfig"), env);
  return cfg;
}

/** The program's view of the checked file: durations renamed to say their unit, files read, secrets looked up. */
function toConfig(f: ConfigFile, env: Env, name: (k: ConfigKey) => string): Config {
  const { pullTimeout, revalidateAfter, transferRateWindow, shutdownDelay, drainTimeout, health, admin, htpasswd, alwaysPullLatest, store, s3, registries, replicas, ...same } = f;
  return {
    ...same,
    pullTimeoutMs: pullTimeout, revalidateAfterMs: revalidateAfter, transferRateWindowMs: transferRateWindow,
    shutdownDelayMs: shutdownDelay, drainTimeoutMs: drainTimeout,
    // The seed's switch, expressed as a freshness rule: `latest` is checked upstream on every pull.
    tagPolicies: alwaysPullLatest ? [{ match: ":latest$", revalidateAfterMs: 0 }, ...f.tagPolicies] : f.tagPolicies,
    healthPort: health,
    adminToken: admin && adminToken(admin, env),
    users: htpasswd === undefined ? f.users : [...f.users, ...readHtpasswd(htpasswd, name("htpasswd"))],
    serverTlsConfig: f.serverTlsConfig && {
      ...f.serverTlsConfig,
      cert: readFileText(f.serverTlsConfig.cert, "serverTlsConfig.cert"),
      key: readFileText(f.serverTlsConfig.key, "serverTlsConfig.key"),
      ca: f.serverTlsConfig.ca === undefined ? undefined : readFileText(f.serverTlsConfig.ca, "serverTlsConfig.ca"),
    },
    registries: registries.map((r, i) => registryEntry(r, `registries[${i}]`, env)),
    s3: store === undefined && s3 === undefined ? undefined : s3Store(store, s3 ?? v.parse(entries.s3, {})!, env, name),
    replicas: replicas && replicaLink(replicas, store !== undefined || s3 !== undefined, env),
  };
}

function replicaLink(r: NonNullable<ConfigFile["replicas"]>, s3: boolean, env: Env): NonNullable<Config["replicas"]> {
  if (!s3) throw new ConfigError("replicas", "needs an S3 store (store: s3://BUCKET/PREFIX): replicas coordinate through it");
  const secret = r.secret ?? env[r.secretFromEnv!];
  if (!secret) throw new ConfigError("replicas.secretFromEnv", `environment variable ${r.secretFromEnv} is not set`);
  if (secret.length < REPLICA_SECRET_MIN) throw new ConfigError("replicas.secretFromEnv", `the secret in ${r.secretFromEnv} must be at least ${REPLICA_SECRET_MIN} characters`);
  if (r.advertiseFromEnv === undefined) return { secret, advertise: r.advertise };
  const advertise = env[r.advertiseFromEnv];
  if (!advertise) throw new ConfigError("replicas.advertiseFromEnv", `environment variable ${r.advertiseFromEnv} is not set`);
  return { secret, advertise: check(httpUrl(), advertise, () => "replicas.advertiseFromEnv") };
}

function credentials(a: { user: string; password?: string; passwordFromEnv?: string }, key: string, env: Env): Credentials {
  if (a.passwordFromEnv === undefined) return { user: a.user, password: a.password! };
  const value = env[a.passwordFromEnv];
  if (!value) throw new ConfigError(`${key}.passwordFromEnv`, `environment variable ${a.passwordFromEnv} is not set`);
  return { user: a.user, password: value };
}

function tlsFiles<T extends { ca?: string; cert?: string; key?: string }>(t: T, key: string): T {
  const read = (k: "ca" | "cert" | "key") => (t[k] === undefined ? undefined : readFileText(t[k]!, `${key}.${k}`));
  return { ...t, ca: read("ca"), cert: read("cert"), key: read("key") };
}

function registryEntry(r: ConfigFile["registries"][number], key: string, env: Env): RegistryEntry {
  const { auth, tls, endpoints, ...rest } = r;
  const entry: RegistryEntry = { ...rest };
  if (auth) entry.auth = credentials(auth, `${key}.auth`, env);
  if (tls) entry.tls = tlsFiles(tls, `${key}.tls`);
  if (endpoints) {
    entry.endpoints = endpoints.map((e, i) => ({
      url: e.url,
      auth: e.auth && credentials(e.auth, `${key}.endpoints[${i}].auth`, env),
      tls: e.tls && tlsFiles(e.tls, `${key}.endpoints[${i}].tls`),
    }));
  }
  return entry;
}

function adminToken(a: NonNullable<ConfigFile["admin"]>, env: Env): string {
  const token = a.token ?? env[a.tokenFromEnv!];
  if (!token) throw new ConfigError("admin.tokenFromEnv", `environment variable ${a.tokenFromEnv} is not set`);
  if (token.length < 16) throw new ConfigError("admin", "the token must be at least 16 characters");
  return token;
}

/** Reads an htpasswd file; only bcrypt entries (`htpasswd -B`) are accepted. */
function readHtpasswd(path: string, key: string): Config["users"] {
  const out: Config["users"] = [];
  readFileText(path, key).split("\n").forEach((line, i) => {
    const l = line.trim();
    if (!l || l.startsWith("#")) return;
    const c = l.indexOf(":");
    const hash = l.slice(c + 1);
    if (c <= 0 || !/^\$2[aby]\$/.test(hash)) throw new ConfigError(key, `${path} line ${i + 1}: only bcrypt entries (htpasswd -B) are supported`);
    out.push({ user: l.slice(0, c), password: hash });
  });
  return out;
}

/** The S3 store from `store: s3://BUCKET/PREFIX` and the `s3` section; keys and region may come from the AWS_* variables. */
function s3Store(store: ConfigFile["store"], s: NonNullable<ConfigFile["s3"]>, env: Env, name: (k: ConfigKey) => string): S3Config {
  const bucket = store?.bucket ?? s.bucket;
  if (!bucket) throw new ConfigError(name("store"), "an S3 store needs a bucket: store: s3://BUCKET/PREFIX or s3.bucket");
  if (!s.endpoint) throw new ConfigError("s3.endpoint", "is required for an S3 store (e.g. https://s3.us-east-1.amazonaws.com)");
  const accessKeyId = s.accessKeyId ?? env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = s.secretAccessKey ?? env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) throw new ConfigError("s3", "needs accessKeyId and secretAccessKey (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  if ("percent" in s.localCopy) throw new ConfigError("s3.localCopy", "give a size in bytes (e.g. 2GiB), or 0 to turn the local copy off");
  if ("percent" in s.uploadTrail) throw new ConfigError("s3.uploadTrail", "give a size in bytes (e.g. 256MiB), or 0 to upload beside the download");
  return {
    endpoint: s.endpoint, bucket, prefix: store?.prefix ?? s.prefix ?? "", accessKeyId, secretAccessKey, localCopyBytes: s.localCopy.bytes,
    uploadTrailBytes: s.uploadTrail.bytes,
    region: s.region ?? env.AWS_REGION ?? "us-east-1",
    forcePathStyle: s.forcePathStyle, redirect: s.redirect, abortUploadsAfterMs: s.abortUploadsAfter,
  };
}
