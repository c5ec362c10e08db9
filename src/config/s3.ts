// The S3 store's settings: `store: s3://BUCKET/PREFIX` (or `--store`) and the `s3` section
// (`endpoint, region, bucket, prefix, accessKeyId, secretAccessKey, forcePathStyle, redirect`);
// the keys may also come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
import { ConfigError } from "./error.ts";
import type { S3Config } from "./schema.ts";
import { bool, duration, isObject, keysOf, str } from "./values.ts";

type Env = Record<string, string | undefined>;

/** `s3://bucket/prefix` → bucket and prefix ("" or ending in "/"). */
export function parseStoreUrl(v: string, key: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(v);
  if (!m) throw new ConfigError(key, `must be s3://BUCKET or s3://BUCKET/PREFIX (or leave it out for the directory store), got ${JSON.stringify(v)}`);
  const prefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
  if (prefix.split("/").some((p) => p === ".." || p === ".")) throw new ConfigError(key, "the prefix may not contain . or .. segments");
  return { bucket: m[1]!, prefix: prefix ? `${prefix}/` : "" };
}

export function s3Store(store: unknown, section: unknown, where: (k: string) => string, env: Env, previous?: S3Config): S3Config {
  const s = section === undefined ? {} : section;
  if (!isObject(s)) throw new ConfigError(where("s3"), "must be a mapping");
  keysOf(s, where("s3"), ["endpoint", "region", "bucket", "prefix", "accessKeyId", "secretAccessKey", "forcePathStyle", "redirect", "abortUploadsAfter"]);
  const fromUrl = store === undefined ? null : parseStoreUrl(str(store, where("store")), where("store"));
  const bucket = fromUrl?.bucket ?? (s.bucket === undefined ? previous?.bucket : str(s.bucket, `${where("s3")}.bucket`));
  if (!bucket) throw new ConfigError(where("store"), "an S3 store needs a bucket: store: s3://BUCKET/PREFIX or s3.bucket");
  const endpoint = s.endpoint === undefined ? previous?.endpoint : str(s.endpoint, `${where("s3")}.endpoint`);
  if (!endpoint) throw new ConfigError(`${where("s3")}.endpoint`, "is required for an S3 store (e.g. https://s3.us-east-1.amazonaws.com)");
  try {
    const u = new URL(endpoint);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
  } catch {
    throw new ConfigError(`${where("s3")}.endpoint`, `must be an http:// or https:// URL, got ${JSON.stringify(endpoint)}`);
  }
  const accessKeyId = s.accessKeyId === undefined ? previous?.accessKeyId ?? env.AWS_ACCESS_KEY_ID : str(s.accessKeyId, `${where("s3")}.accessKeyId`);
  const secretAccessKey = s.secretAccessKey === undefined ? previous?.secretAccessKey ?? env.AWS_SECRET_ACCESS_KEY : str(s.secretAccessKey, `${where("s3")}.secretAccessKey`);
  if (!accessKeyId || !secretAccessKey) throw new ConfigError(where("s3"), "needs accessKeyId and secretAccessKey (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  const prefix = fromUrl?.prefix ?? (s.prefix === undefined ? previous?.prefix ?? "" : parseStoreUrl(`s3://${bucket}/${str(s.prefix, `${where("s3")}.prefix`)}`, `${where("s3")}.prefix`).prefix);
  return {
    endpoint, bucket, prefix, accessKeyId, secretAccessKey,
    region: s.region === undefined ? previous?.region ?? env.AWS_REGION ?? "us-east-1" : str(s.region, `${where("s3")}.region`),
    forcePathStyle: s.forcePathStyle === undefined ? previous?.forcePathStyle ?? true : bool(s.forcePathStyle, `${where("s3")}.forcePathStyle`),
    redirect: s.redirect === undefined ? previous?.redirect ?? false : bool(s.redirect, `${where("s3")}.redirect`),
    abortUploadsAfterMs: s.abortUploadsAfter === undefined ? previous?.abortUploadsAfterMs ?? 3_600_000 : duration(s.abortUploadsAfter, `${where("s3")}.abortUploadsAfter`),
  };
}
