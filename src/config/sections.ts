// The configuration's sections as schemas: tag policies, pruning, server TLS, downstream users,
// the admin API, archives and the S3 store. Files and environment variables they name are read
// later, by resolve.ts; these only check the shape.
import * as v from "valibot";
import { bool, crossCheck, doc, duration, httpUrl, mapping, oneOf, pattern, size, str, whole } from "./values.ts";

export const tagPolicies = v.array(v.pipe(mapping({
  match: doc(pattern(), "regular expression matched against `<upstream>/<repository>:<tag>`"),
  revalidateAfter: doc(duration(), "how long a matching cached tag is served before it is checked upstream again; `0s` checks on every pull"),
}, "must be a mapping with match and revalidateAfter"), v.transform((p) => ({ match: p.match, revalidateAfterMs: p.revalidateAfter }))),
"must be a list of {match, revalidateAfter}");

export const pruneConfig = v.pipe(mapping({
  enabled: doc(v.optional(bool(), false), "background pruning inside `serve`", { default: "off" }),
  duration: doc(v.optional(duration(), "30d"), "images older than this are removed"),
  type: doc(v.optional(oneOf(["accessed", "created"], "must be accessed or created"), "accessed"), "`accessed` (by last pull) or `created` (by when the tag was first cached)"),
  frequency: doc(v.optional(duration({ ms: 60_000, text: "1m" }), "1d"), "how often; at least `1m`"),
  count: doc(v.optional(v.pipe(whole(-1, Number.MAX_SAFE_INTEGER, "must be -1 (no limit) or a positive whole number"),
    v.notValue(0, "must be -1 (no limit) or a positive whole number")), -1), "at most this many images per run; `-1`: no limit"),
  dryRun: doc(v.optional(bool(), false), "only log what would be removed"),
}, "must be a mapping with enabled, duration, type and frequency"), v.transform((p) => ({
  enabled: p.enabled, olderThanMs: p.duration, type: p.type, frequencyMs: p.frequency, count: p.count, dryRun: p.dryRun,
})));

export const serverTlsConfig = v.pipe(mapping({
  cert: doc(str(), "serve HTTPS with this certificate (PEM file) …"),
  key: doc(str(), "… and its key"),
  ca: doc(v.optional(str()), "CA that signs client certificates (needed for `verify`)"),
  clientAuth: doc(v.optional(oneOf(["none", "verify"], "must be none or verify"), "none"),
    "`verify`: clients without a certificate signed by `ca` are refused at the handshake"),
}, "must be a mapping with cert and key"), crossCheck((t) =>
  t.clientAuth === "verify" && t.ca === undefined ? { key: "ca", problem: "is required when clientAuth is verify" } : undefined));

export const users = v.array(mapping({
  user: doc(str(), "a user name clients log in with"),
  password: doc(str(), "a bcrypt hash (`htpasswd -B`) or plain text"),
}, "must be a mapping with user and password"), "must be a list of {user, password}");

export const admin = v.pipe(mapping({
  token: doc(v.optional(str()), "turns the admin API on, with this bearer token (at least 16 characters) …"),
  tokenFromEnv: doc(v.optional(str()), "… or the environment variable holding it"),
}, "must be a mapping with token or tokenFromEnv"), crossCheck((a) =>
  (a.token === undefined) === (a.tokenFromEnv === undefined) ? { key: "", problem: "give exactly one of token or tokenFromEnv" }
  : a.token !== undefined && a.token.length < 16 ? { key: "", problem: "the token must be at least 16 characters" } : undefined));

/** Default of `archives.rescan`. */
export const ARCHIVES_RESCAN = "10m";
export const archivesPath = str();
export const archives = v.pipe(mapping({
  path: doc(archivesPath, "a directory of `.oci` archives served first (as `--archives`)"),
  rescan: doc(v.optional(duration({ ms: 1000, text: "1s" }), ARCHIVES_RESCAN), "how often it is scanned for added and removed files; at least `1s`"),
}, "must be a mapping with path and optionally rescan"), v.transform((a) => ({ path: a.path, rescanMs: a.rescan })));

const S3_URL = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/;
/** `s3://bucket/prefix` → bucket and prefix ("" or ending in "/"). */
export const storeUrl = v.pipe(str(), v.rawTransform(({ dataset, addIssue, NEVER }) => {
  const m = S3_URL.exec(dataset.value);
  if (!m) {
    addIssue({ message: `must be s3://BUCKET or s3://BUCKET/PREFIX (or leave it out for the directory store), got ${JSON.stringify(dataset.value)}` });
    return NEVER;
  }
  const prefix = cleanPrefix(m[2] ?? "");
  if (prefix === null) addIssue({ message: PREFIX_DOTS });
  return prefix === null ? NEVER : { bucket: m[1]!, prefix };
}));

const PREFIX_DOTS = "the prefix may not contain . or .. segments";
/** "" or a prefix ending in "/"; null when a segment is . or .. */
function cleanPrefix(p: string): string | null {
  const prefix = p.replace(/^\/+|\/+$/g, "");
  if (prefix.split("/").some((s) => s === ".." || s === ".")) return null;
  return prefix ? `${prefix}/` : "";
}

export const s3 = mapping({
  endpoint: doc(v.optional(httpUrl()), "the S3 service, e.g. `https://s3.us-east-1.amazonaws.com` (required for an S3 store)"),
  region: doc(v.optional(str()), "its region", { default: "`AWS_REGION`, `us-east-1`" }),
  bucket: doc(v.optional(str()), "the bucket (also from `store`)"),
  prefix: doc(v.optional(v.pipe(str(), v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const prefix = cleanPrefix(dataset.value);
    if (prefix === null) addIssue({ message: PREFIX_DOTS });
    return prefix ?? NEVER;
  }))), "where in the bucket (also from `store`)"),
  accessKeyId: doc(v.optional(str()), "the access key (never logged)", { default: "`AWS_ACCESS_KEY_ID`" }),
  secretAccessKey: doc(v.optional(str()), "the secret key (never logged)", { default: "`AWS_SECRET_ACCESS_KEY`" }),
  forcePathStyle: doc(v.optional(bool(), true), "bucket in the path (Ceph RGW, MinIO); `false` for virtual-hosted style (AWS)"),
  redirect: doc(v.optional(bool(), false), "answer warm blob GETs with `307` to a presigned URL (5 minutes) instead of streaming them"),
  abortUploadsAfter: doc(v.optional(duration(), "1h"), "incomplete multipart uploads (a replica killed mid-upload) older than this are aborted at start"),
  uploadTrail: doc(v.optional(size(), "256MiB"), "in `serve`, a cold blob of 8 MiB or more goes up to S3 after its download, once no request has been in flight for 50 ms (at most 2 s later), so the clients' pulls do not share the cores and the link with the upload; parts of a longer download go up beside it, trailing it by this many bytes; `0` uploads beside the download"),
  localCopy: doc(v.optional(size(), "2GiB"), "`serve` keeps verified blobs up to this many bytes on local disk under `imagePath` (least recently served evicted first) and sends warm ones from there with sendfile instead of streaming them from S3; dropped at restart; `0` turns it off (unused with `redirect`)"),
}, "must be a mapping");

/** The shortest shared secret replicas accept (an HMAC key: guessable ones are refused). */
export const REPLICA_SECRET_MIN = 16;
export const replicas = v.pipe(mapping({
  secret: doc(v.optional(str()), `replicas on one S3 store fetch each cold blob once among them and stream it to each other over \`/_internal/v1/downloads/\` on the serve port, signed with this shared secret (at least ${REPLICA_SECRET_MIN} characters, the same on every replica; never logged) …`),
  secretFromEnv: doc(v.optional(str()), "… or the environment variable holding it"),
  advertise: doc(v.optional(httpUrl()), "the URL the other replicas reach this one at, e.g. `http://10.0.0.5:8080` (default: `http://<host>:<port>` when `host` is an address other than `0.0.0.0`) …"),
  advertiseFromEnv: doc(v.optional(str()), "… or the environment variable holding it (Kubernetes: built from the pod IP)"),
}, "must be a mapping with secret or secretFromEnv"), crossCheck((r) =>
  (r.secret === undefined) === (r.secretFromEnv === undefined) ? { key: "", problem: "give exactly one of secret or secretFromEnv" }
  : r.advertise !== undefined && r.advertiseFromEnv !== undefined ? { key: "", problem: "give at most one of advertise or advertiseFromEnv" }
  : r.secret !== undefined && r.secret.length < REPLICA_SECRET_MIN ? { key: "secret", problem: `must be at least ${REPLICA_SECRET_MIN} characters` } : undefined));
