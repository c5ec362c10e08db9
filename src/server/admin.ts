// The admin API under /api/v1/: off unless a token is configured; every request needs
// `Authorization: Bearer <token>`, compared in constant time (downstream basic auth does not
// count); wrong tokens are throttled per client address like failed logins (429 with Retry-After).
// Images, prune, load jobs and the status figures the status page shows. Every action (and every
// wrong token) leaves an audit line: what, on what, from which address, with what result.
import { matchesAny, type ImagePattern } from "../oci/pattern.ts";
import { timingSafeEqual } from "node:crypto";
import type { Archives } from "../archives/source.ts";
import type { Cache, PlatformChoice } from "../cache/index.ts";
import { listImages, listImagesPage } from "../cache/list.ts";
import type { TagIndex } from "../cache/tag-index.ts";
import { pullImages, type PullProgress } from "../cache/pull-images.ts";
import { parseDuration } from "../config/duration.ts";
import { ConfigError } from "../config/error.ts";
import { compilePattern } from "../config/values.ts";
import { BoundedMap } from "../lib/bounded-map.ts";
import { hostPlatform, parsePlatform } from "../oci/platform.ts";
import { parseImageReference, type ImageReference } from "../oci/reference.ts";
import { tooManyAttempts } from "../registry/auth.ts";
import { hasMalformedEscape } from "../registry/errors.ts";
import { clientKey, createLoginThrottle } from "../registry/throttle.ts";
import { recordName } from "../store/record.ts";
import type { Store } from "../store/types.ts";
import { logFields, type Fields, type Logger } from "../log.ts";
import type { ReloadOutcome } from "./reload.ts";

/** Largest JSON body the admin API reads. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Load jobs remembered (the oldest are forgotten first). */
const MAX_JOBS = 100;
/** Images per page of `GET images?limit=`: the default and the most one page holds. */
const PAGE_DEFAULT = 100;
const PAGE_MAX = 1000;
/** Longest search text and cursor accepted (a name is at most a few hundred characters). */
const MAX_QUERY_CHARS = 1024;

export interface Job {
  id: string;
  state: "running" | "done" | "failed";
  started: string;
  finished?: string;
  progress: PullProgress;
  pulled: Array<{ ref: string; digest: string }>;
  failed: Array<{ ref: string; error: string }>;
}

export interface AdminOptions {
  token: string;
  cache: Cache;
  store: Store;
  /** The archives directory, when serving one: its images are listed and it can be rescanned. */
  archives?: Archives | null;
  /** The figures of GET status. */
  status: () => unknown;
  /** The store's tag names in memory: pages of `GET images?limit=&cursor=&q=` come from it. */
  tags?: TagIndex;
  /** The config's `pinned` patterns, shown in the image listing. */
  pinned?: ImagePattern[];
  /** Told of prune results (metrics). */
  onPruned?: (bytes: number) => void;
  /** Where audit lines go (tag `audit`, info). */
  log?: Logger;
  /** POST reload: reads the config again (server/reload.ts). */
  reload?: () => Promise<ReloadOutcome>;
  /** Throttles wrong tokens per client address (tests pass one with a clock). */
  throttle?: ReturnType<typeof createLoginThrottle>;
}

function json(body: unknown, status = 200): Response {
  return Response.json(body, { status, headers: { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" } });
}

function problem(status: number, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ error: message }, { status, headers: { "X-Content-Type-Options": "nosniff", ...headers } });
}

/** Reads a JSON body of at most MAX_BODY_BYTES. */
async function readJson(req: Request): Promise<Record<string, unknown>> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const c of req.body ?? []) {
    size += c.byteLength;
    if (size > MAX_BODY_BYTES) throw new AdminInputError(`the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new AdminInputError("the request body must be a JSON object");
}

class AdminInputError extends Error {}

/** The audited action a request asks for; null for reads (status, images, jobs). */
export function actionOf(method: string, path: string): string | null {
  if (method === "POST" && (path === "prune" || path === "load" || path === "archives/rescan")) return path === "load" ? "load.start" : path.replace("/", ".");
  if (method === "DELETE" && path.startsWith("images/")) return "image.delete";
  if ((method === "PUT" || method === "DELETE") && path.startsWith("pins/")) return method === "PUT" ? "pin" : "unpin";
  return null;
}

export function createAdmin(opts: AdminOptions) {
  const expected = new Bun.CryptoHasher("sha256").update(opts.token).digest();
  const jobs = new BoundedMap<string, Job>(MAX_JOBS);
  const throttle = opts.throttle ?? createLoginThrottle();
  let nextJob = 1;

  /** One audit line: `action` on `target` by `client`, and how it ended. */
  function audit(action: string, target: string, client: string | undefined, result: string, more: Fields = {}) {
    if (opts.log) logFields(opts.log, "info", "audit", `${action} ${target}: ${result}`, { action, target, client: client ?? null, result, ...more });
  }

  function tokenMatches(req: Request): boolean {
    const h = req.headers.get("authorization") ?? "";
    const m = h.match(/^Bearer\s+(.+)$/i);
    if (!m) return false;
    // Hashing both sides makes the comparison constant-time whatever the lengths.
    return timingSafeEqual(new Bun.CryptoHasher("sha256").update(m[1]!).digest(), expected);
  }

  /** null when the request carries the admin token; else the 401 (or, after a few wrong tokens from its address, 429) to answer. */
  function refusal(req: Request, client?: string): Response | null {
    const address = `address ${clientKey(client)}`;
    const begun = throttle.begin([address]);
    const what = () => `${req.method} ${new URL(req.url).pathname}`;
    if (typeof begun !== "function") {
      const t = tooManyAttempts(begun, "admin tokens");
      audit("auth", what(), client, "refused", { reason: "throttled" });
      return problem(429, t.message, { "Retry-After": t.retryAfter });
    }
    const ok = tokenMatches(req);
    // A request without any Authorization is a page asking first, not a guess.
    const guessed = !ok && req.headers.has("authorization");
    begun(ok ? "ok" : guessed ? "failed" : "dropped");
    if (guessed) audit("auth", what(), client, "refused", { reason: "wrong token" });
    return ok ? null : problem(401, "the admin API needs Authorization: Bearer <admin token>", { "WWW-Authenticate": 'Bearer realm="ociregistry-admin"' });
  }

  async function prune(body: Record<string, unknown>) {
    const olderThan = body.olderThan ?? "30d";
    const olderThanMs = typeof olderThan === "string" ? parseDuration(olderThan) : null;
    if (olderThanMs === null) throw new AdminInputError(`olderThan: ${JSON.stringify(olderThan)} is not a duration like 30d`);
    const by = body.by ?? "lastPulled";
    if (by !== "lastPulled" && by !== "created") throw new AdminInputError("by: must be lastPulled or created");
    let pattern: RegExp | undefined;
    if (body.pattern !== undefined) {
      try {
        pattern = compilePattern(String(body.pattern), "pattern");
      } catch (err) {
        throw err instanceof ConfigError ? new AdminInputError(err.message) : err;
      }
    }
    const r = await opts.cache.prune({ olderThanMs, by, pattern, dryRun: body.dryRun === true });
    if (!r.dryRun) opts.onPruned?.(r.bytes);
    return r;
  }

  function startLoad(body: Record<string, unknown>, client: string | undefined): Job {
    const list = body.images;
    if (!Array.isArray(list) || list.length === 0 || list.length > 1000) throw new AdminInputError("images: must be a list of 1 to 1000 image references");
    const refs: ImageReference[] = list.map((s, i) => {
      const r = parseImageReference(String(s));
      if (!r.ok) throw new AdminInputError(`images[${i}]: ${r.reason}`);
      return r.ref;
    });
    if (body.pin !== undefined && typeof body.pin !== "boolean") throw new AdminInputError("pin: must be true or false");
    let platforms: PlatformChoice = [hostPlatform()];
    if (body.platforms === "all") platforms = "all";
    else if (Array.isArray(body.platforms)) {
      platforms = body.platforms.map((p, i) => parsePlatform(String(p)) ?? (() => {
        throw new AdminInputError(`platforms[${i}]: not os/arch[/variant]`);
      })());
    }
    const job: Job = {
      id: String(nextJob++), state: "running", started: new Date().toISOString(),
      progress: { total: refs.length, done: 0, failed: 0, bytes: 0 }, pulled: [], failed: [],
    };
    jobs.set(job.id, job);
    const images = refs.length === 1 ? String(list[0]) : `${refs.length} images`;
    audit("load.start", images, client, "started", { job: job.id, pin: body.pin === true });
    void pullImages(opts.cache.pullImage, refs, { platforms, concurrency: 4, withReferrers: body.withReferrers === true, pinned: body.pin === true, onProgress: (p) => (job.progress = { ...p }) })
      .then(async (o) => {
        await opts.cache.flush();
        job.pulled = o.pulled.map((p) => ({ ref: p.ref, digest: p.result.digest }));
        job.failed = o.failed;
        job.state = o.failed.length ? "failed" : "done";
      }, (err) => {
        job.failed.push({ ref: "*", error: (err as Error).message });
        job.state = "failed";
      })
      .finally(() => {
        job.finished = new Date().toISOString();
        audit("load.end", images, client, job.state, { job: job.id, pulled: job.pulled.length, failed: job.failed.length, bytes: job.progress.bytes });
      });
    return job;
  }

  /** The image reference a path names (with a tag or digest); AdminInputError when it names none. */
  function imageRef(raw: string): ImageReference {
    if (hasMalformedEscape(raw)) throw new AdminInputError("the image reference holds a malformed percent-escape; send % as %25");
    const ref = parseImageReference(decodeURIComponent(raw));
    if (!ref.ok || !ref.ref.reference) throw new AdminInputError(`not an image reference with a tag or digest: ${raw}`);
    return ref.ref;
  }

  /** `GET images`: the whole listing as a list, or with any of limit, cursor, q one page of the store's images. */
  async function images(req: Request): Promise<Response> {
    const p = new URL(req.url).searchParams;
    if (!opts.tags || !["limit", "cursor", "q"].some((k) => p.has(k))) {
      return json([...(await listImages(opts.store, undefined, undefined, opts.pinned)), ...((await opts.archives?.images()) ?? [])]);
    }
    const raw = p.get("limit");
    const limit = raw === null ? PAGE_DEFAULT : /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
    if (!(limit >= 1 && limit <= PAGE_MAX)) throw new AdminInputError(`limit: must be a whole number from 1 to ${PAGE_MAX}`);
    const [cursor, q] = [p.get("cursor") ?? undefined, p.get("q") ?? undefined];
    if ((cursor?.length ?? 0) > MAX_QUERY_CHARS || (q?.length ?? 0) > MAX_QUERY_CHARS) throw new AdminInputError(`cursor and q: at most ${MAX_QUERY_CHARS} characters`);
    return json(await listImagesPage(opts.store, opts.tags, { limit, cursor, q }, opts.pinned));
  }

  async function route(req: Request, path: string, client: string | undefined): Promise<Response> {
    const m = req.method;
    if (path === "status" && m === "GET") return json(opts.status());
    if (path === "images" && m === "GET") return images(req);
    if (path === "jobs" && m === "GET") {
      // Newest first, without the per-image lists (GET jobs/N has them).
      const list = [...jobs.entries()].map(([, j]) => ({ id: j.id, state: j.state, started: j.started, finished: j.finished, progress: j.progress }));
      return json({ jobs: list.sort((a, b) => Number(b.id) - Number(a.id)) });
    }
    if (path === "archives/rescan" && m === "POST") {
      if (!opts.archives) return problem(404, "no archives directory is being served (serve --archives DIR)");
      // The last listing keeps serving when the directory cannot be read (an NFS outage).
      const dir = opts.archives.dir;
      return opts.archives.rescan().then((r) => {
        audit("archives.rescan", dir, client, "ok", { files: r.files });
        return json(r);
      }, (err) => {
        audit("archives.rescan", dir, client, "failed", { reason: (err as Error).message });
        return problem(503, (err as Error).message);
      });
    }
    if (path === "reload" && m === "POST" && opts.reload) {
      const r = await opts.reload();
      audit("reload", "config", client, r.ok ? "ok" : "refused", r.ok ? {} : { reason: r.error });
      return r.ok ? json(r.changes) : problem(400, r.error);
    }
    if (path === "prune" && m === "POST") {
      const body = await readJson(req);
      const r = await prune(body);
      audit("prune", body.pattern === undefined ? "*" : String(body.pattern), client, r.dryRun ? "dry-run" : "ok", { images: r.images.length, blobs: r.blobs, bytes: r.bytes });
      return json(r);
    }
    if (path === "load" && m === "POST") return json(startLoad(await readJson(req), client), 202);
    const job = path.match(/^jobs\/(\d+)$/);
    if (job && m === "GET") {
      const j = jobs.get(job[1]!);
      return j ? json(j) : problem(404, `no job ${job[1]}`);
    }
    const pin = path.match(/^pins\/(.+)$/);
    if (pin && (m === "PUT" || m === "DELETE")) {
      const ref = imageRef(pin[1]!);
      const name = recordName({ upstream: ref.upstream, repository: ref.repository, tag: ref.reference! });
      if (m === "DELETE" && opts.pinned && matchesAny(opts.pinned, name)) {
        audit("unpin", name, client, "refused", { reason: "pinned by a config pattern" });
        return problem(409, `${name} is pinned by the config's pinned patterns: remove the pattern (and reload) to unpin it`);
      }
      const found = await opts.cache.setPinned({ upstream: ref.upstream, repository: ref.repository }, ref.reference!, m === "PUT");
      audit(m === "PUT" ? "pin" : "unpin", name, client, found ? "ok" : "not-found");
      return found ? json({ image: name, pinned: m === "PUT" }) : problem(404, `${name} is not in the store`);
    }
    const image = path.match(/^images\/(.+)$/);
    if (image && m === "DELETE") {
      const ref = imageRef(image[1]!);
      const name = recordName({ upstream: ref.upstream, repository: ref.repository, tag: ref.reference! });
      const r = await opts.cache.prune({ olderThanMs: -1, by: "lastPulled", select: (rec) => recordName(rec) === name, dryRun: false });
      audit("image.delete", name, client, r.images.length ? "ok" : "not-found", { blobs: r.blobs, bytes: r.bytes });
      if (!r.images.length) return problem(404, `${name} is not in the store`);
      opts.onPruned?.(r.bytes);
      return json(r);
    }
    return problem(404, `no such admin endpoint: ${m} /api/v1/${path}`);
  }

  return {
    /** Answers a request under /api/v1/; `path` is what follows that prefix; `client` the peer's address. */
    async handle(req: Request, path: string, client?: string): Promise<Response> {
      const refused = refusal(req, client);
      if (refused) return refused;
      try {
        return await route(req, path, client);
      } catch (err) {
        const action = actionOf(req.method, path);
        const input = err instanceof AdminInputError;
        if (action) audit(action, path.slice(path.indexOf("/") + 1) || path, client, input ? "invalid" : "failed", { reason: (err as Error).message });
        if (input) return problem(400, err.message);
        throw err;
      }
    },
    /** Lets other modules check the token, throttled alike (the status page's data). */
    refusal,
  };
}
