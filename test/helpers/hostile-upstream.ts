// A hostile upstream for the security tests: an HTTP(S) server on a loopback address that speaks
// enough of the distribution API (/v2/, manifests, blobs, tags/list, referrers, a token endpoint)
// to serve real images, misbehaves as the first component of the repository name says
// (`/v2/redirect-file/manifests/v1`, `/v2/tarpit-drip/r7/tags/list`), and records every request.
// A witness server records what reaches it and serves given bytes: proof of where the cache went,
// and with which headers.
// Built on node:http, not Bun.serve: a paced body must keep its Content-Length (Bun.serve drops it
// on a streamed body) and the token tests send request headers far above Bun.serve's 16 KiB limit.
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttps } from "node:https";
import type { Socket } from "node:net";
import { readFileSync } from "node:fs";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_INDEX, OCI_MANIFEST } from "../../src/oci/mediatypes.ts";
import { allBlobs, makeImage, type Image } from "./images.ts";

export interface Recorded {
  method: string;
  /** Path and query exactly as received. */
  path: string;
  /** Header names lower-cased. */
  headers: Record<string, string>;
}

export type Kind = "ping" | "manifests" | "blobs" | "tags" | "referrers" | "token" | "other";

export interface Exchange {
  kind: Kind;
  /** Repository named by the path (for the token endpoint: by the scope); "" when none. */
  repo: string;
  /** Tag or digest of a manifests, blobs or referrers request. */
  ref: string;
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  server: HostileUpstream;
}

export type Behaviour = (x: Exchange) => void | Promise<void>;

export interface HostileUpstream {
  host: string;
  /** `http://127.0.0.21` or `https://127.0.0.22` */
  base: string;
  requests: Recorded[];
  /** Requests for repositories starting with `prefix` (token requests by their scope). */
  requestsFor(prefix: string): Recorded[];
  /** Serves `img` as `repo:tag` (and by digest); its blobs under any repository. */
  add(repo: string, tag: string, img: Image): void;
  /** Repositories whose first component is `name` behave so (replaces a built-in of that name). */
  behave(name: string, b: Behaviour): void;
  /** Body bytes sent so far by paced and endless responses, by request path. */
  sent: Map<string, number>;
  /** The image behind the built-in media-type manifests. */
  fixture: Image;
  stop(): Promise<void>;
}

export interface Witness {
  url: string;
  port: number;
  requests: Recorded[];
  stop(): Promise<void>;
}

export interface ServerTls {
  cert: string;
  key: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;
/** Endless bodies are sent at most this fast, and stop (as a safety net) after ENDLESS_CAP bytes. */
const ENDLESS_RATE = 256 * MiB;
const ENDLESS_CAP = 1024 * MiB;

/** Tokens issued by any hostile instance; every instance accepts them (a token server elsewhere). */
const issued = new Set<string>();
let nextToken = 0;

function issueToken(size: number): string {
  const id = `${Date.now().toString(36)}${(nextToken++).toString(36)}`;
  issued.add(id);
  const t = `hostile.${id}.`;
  return t + "x".repeat(Math.max(0, size - t.length));
}

function hasToken(x: Exchange): boolean {
  const m = /^Bearer hostile\.([a-z0-9]+)\./.exec(x.req.headers.authorization ?? "");
  return !!m && issued.has(m[1]!);
}

/** Waits `ms`, or less when the response closes first. */
const sleep = (ms: number, res: ServerResponse) => new Promise<void>((resolve) => {
  const done = () => {
    clearTimeout(t);
    res.off("close", done);
    resolve();
  };
  const t = setTimeout(done, ms);
  res.once("close", done);
});

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": String(bytes.length), ...headers });
  res.end(bytes);
}

function send(x: Exchange, status: number, bytes: Uint8Array, headers: Record<string, string>) {
  x.res.writeHead(status, { ...headers, "Content-Length": String(bytes.byteLength) });
  x.res.end(x.req.method === "HEAD" ? undefined : Buffer.from(bytes));
}

// ---------------------------------------------------------------------------------------------
// Behaviours. Each one answers a request the way a registry (honest or not) would.

type Stored = { bytes: Uint8Array; mediaType: string; digest: string };

/** What an honest registry answers (the default behaviour). */
export const honest: Behaviour = (x) => {
  const s = state.get(x.server)!;
  switch (x.kind) {
    case "ping":
      return json(x.res, 200, {});
    case "token":
      return json(x.res, 200, { token: issueToken(48), expires_in: 300 });
    case "manifests": {
      const m = s.manifests.get(`${x.repo}@${x.ref}`);
      if (!m) return json(x.res, 404, { errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] });
      return send(x, 200, m.bytes, { "Content-Type": m.mediaType, "Docker-Content-Digest": m.digest });
    }
    case "blobs": {
      const b = s.blobs.get(x.ref);
      if (!b) return json(x.res, 404, { errors: [{ code: "BLOB_UNKNOWN", message: "blob unknown" }] });
      return send(x, 200, b, { "Content-Type": "application/octet-stream", "Docker-Content-Digest": x.ref });
    }
    case "tags": {
      const t = s.tags.get(x.repo);
      if (!t) return json(x.res, 404, { errors: [{ code: "NAME_UNKNOWN", message: "repository unknown" }] });
      return json(x.res, 200, { name: x.repo, tags: t });
    }
    case "referrers":
      return json(x.res, 200, { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }, { "Content-Type": OCI_INDEX });
    default:
      return json(x.res, 404, { errors: [{ code: "NAME_UNKNOWN", message: "not found" }] });
  }
};

/** What the honest upstream would send for a manifest or blob request, or null. */
function honestBytes(x: Exchange): Stored | null {
  const s = state.get(x.server)!;
  if (x.kind === "manifests") return s.manifests.get(`${x.repo}@${x.ref}`) ?? null;
  const b = x.kind === "blobs" ? s.blobs.get(x.ref) : undefined;
  return b ? { bytes: b, mediaType: "application/octet-stream", digest: x.ref } : null;
}

/** Manifest and blob requests answered with a redirect to `to(x)`; the rest honestly. */
export function redirect(to: (x: Exchange) => string, status = 302): Behaviour {
  return (x) => {
    if (x.kind !== "manifests" && x.kind !== "blobs") return honest(x);
    x.res.writeHead(status, { Location: to(x), "Content-Length": "0" });
    x.res.end();
  };
}

/** Redirects to a `data:` URL holding exactly the bytes the honest upstream would send. */
export const redirectToData: Behaviour = redirect((x) => {
  const b = honestBytes(x);
  return `data:${b?.mediaType ?? "text/plain"};base64,${Buffer.from(b?.bytes ?? new Uint8Array()).toString("base64")}`;
});

/** Redirects to itself with a growing hop counter, forever. */
export const redirectLoop: Behaviour = redirect((x) => {
  const hop = Number(x.url.searchParams.get("hop") ?? "0") + 1;
  return `${x.url.pathname}?hop=${hop}`;
});

/** Always 401 with this WWW-Authenticate header. */
export function challenge(header: string): Behaviour {
  return (x) => (x.kind === "ping" || x.kind === "token" ? honest(x) : json(x.res, 401, { errors: [{ code: "UNAUTHORIZED", message: "auth" }] }, { "WWW-Authenticate": header }));
}

export interface BearerOptions {
  /** Token realm; default this server's `/token`. */
  realm?: string | ((x: Exchange) => string);
  /** What the token endpoint does for this repository; default: issue a token of `tokenSize`. */
  onToken?: Behaviour;
  tokenSize?: number;
  /** What an authorized request gets; default honest. */
  then?: Behaviour;
}

/** Token auth: 401 `Bearer realm=…` until a request carries a token some hostile instance issued. */
export function bearer(opts: BearerOptions = {}): Behaviour {
  return (x) => {
    if (x.kind === "token") return (opts.onToken ?? ((t) => json(t.res, 200, { token: issueToken(opts.tokenSize ?? 48), expires_in: 300 })))(x);
    if (x.kind === "ping" || hasToken(x)) return (opts.then ?? honest)(x);
    const realm = typeof opts.realm === "function" ? opts.realm(x) : opts.realm ?? `${x.server.base}/token`;
    return challenge(`Bearer realm="${realm}",service="hostile",scope="repository:${x.repo}:pull"`)(x);
  };
}

/** Basic auth with these credentials, then `then`. */
export function basic(user: string, password: string, then: Behaviour = honest): Behaviour {
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  return (x) => (x.req.headers.authorization === expected || x.kind === "ping" ? then(x) : challenge('Basic realm="hostile"')(x));
}

/** Never sends a status line: the request hangs until the client gives up. */
export const silent: Behaviour = () => {};

/** Sends 200 and JSON headers, then one byte per second, forever. */
export const drip: Behaviour = async (x) => {
  x.res.writeHead(200, { "Content-Type": x.kind === "referrers" ? OCI_INDEX : "application/json" });
  x.res.flushHeaders();
  const path = x.req.url ?? "";
  while (!x.res.destroyed && !x.res.writableEnded) {
    x.res.write("{");
    x.server.sent.set(path, (x.server.sent.get(path) ?? 0) + 1);
    await sleep(1000, x.res);
  }
};

/** A body that starts with `prefix` and then repeats `unit`, as fast as the client reads (rate-capped). */
export function endlessBody(status: number, contentType: string, prefix: string, unit: string): Behaviour {
  return (x) => new Promise<void>((resolve) => {
    x.res.writeHead(status, { "Content-Type": contentType });
    const path = x.req.url ?? "";
    const chunk = Buffer.from(unit.repeat(Math.ceil((64 * KiB) / unit.length)));
    x.res.write(prefix);
    const started = Date.now();
    let sent = prefix.length;
    x.res.once("close", () => resolve());
    // Bun's node:http reports `write() === false` on a reused connection without ever emitting
    // "drain"; writableNeedDrain tells the real back-pressure apart.
    const pump = () => {
      for (let i = 0; !x.res.destroyed; i++) {
        if (sent >= ENDLESS_CAP) return void x.res.destroy();
        x.res.write(chunk);
        sent += chunk.length;
        x.server.sent.set(path, sent);
        const ahead = (sent / ENDLESS_RATE) * 1000 - (Date.now() - started);
        if (ahead > 5) return void setTimeout(pump, ahead);
        if (x.res.writableNeedDrain) return void x.res.once("drain", pump);
        if (i % 16 === 15) return void setImmediate(pump);
      }
    };
    pump();
  });
}

/** Endless tags/list and referrers JSON, and an endless error body on a 404 for manifests. */
export const endless: Behaviour = (x) => {
  switch (x.kind) {
    case "tags":
      return endlessBody(200, "application/json", `{"name":"${x.repo}","tags":["a"`, `,"a"`)(x);
    case "referrers":
      return endlessBody(200, OCI_INDEX, `{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":[{}`, ",{}")(x);
    case "manifests":
      return endlessBody(404, "application/json", `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"`, "a")(x);
    default:
      return honest(x);
  }
};

export interface PaceOptions {
  /** Bytes per chunk. */
  chunk: number;
  /** Pause between chunks. */
  everyMs: number;
  /** `all`: other bytes of the same length; `last`: only the last byte is wrong. */
  corrupt?: "all" | "last";
  /** Wait this long before the status line. */
  headersAfterMs?: number;
}

/** Blobs sent a chunk at a time with their true Content-Length, optionally with wrong bytes. */
export function paced(opts: PaceOptions): Behaviour {
  return async (x) => {
    const s = state.get(x.server)!;
    const real = x.kind === "blobs" ? s.blobs.get(x.ref) : undefined;
    if (!real) return honest(x);
    const bytes = Buffer.from(real);
    if (opts.corrupt === "all") for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i]! ^ 0x5a;
    if (opts.corrupt === "last") bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    if (opts.headersAfterMs) await sleep(opts.headersAfterMs, x.res);
    x.res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(bytes.length), "Docker-Content-Digest": x.ref });
    if (x.req.method === "HEAD") return void x.res.end();
    const path = x.req.url ?? "";
    for (let off = 0; off < bytes.length && !x.res.destroyed; off += opts.chunk) {
      if (off > 0) await sleep(opts.everyMs, x.res);
      if (x.res.destroyed) return;
      x.res.write(bytes.subarray(off, off + opts.chunk));
      x.server.sent.set(path, Math.min(bytes.length, off + opts.chunk));
    }
    x.res.end();
  };
}

/** Manifest requests get these bytes (any reference); the rest honestly. */
export function manifest(bytes: Uint8Array, contentType: string): Behaviour {
  return (x) => (x.kind === "manifests" ? send(x, 200, bytes, { "Content-Type": contentType, "Docker-Content-Digest": digestOf(bytes) }) : honest(x));
}

/** The fixture image's manifest with its `mediaType` field replaced. */
export function manifestWithMediaType(img: Image, mediaType: string): Uint8Array {
  const m = JSON.parse(new TextDecoder().decode(img.manifest));
  return new TextEncoder().encode(JSON.stringify({ ...m, mediaType }));
}

/** Every request answered with this status. */
export function status(code: number): Behaviour {
  return (x) => (x.kind === "ping" ? honest(x) : json(x.res, code, { errors: [{ code: "UNKNOWN", message: `status ${code}` }] }));
}

function builtins(fixture: Image): Record<string, Behaviour> {
  const tarpit = (b: Behaviour): Behaviour => (x) => (x.kind === "ping" ? honest(x) : b(x));
  return {
    "redirect-file": redirect(() => "file:///etc/passwd"),
    "redirect-data": redirectToData,
    "redirect-loop": redirectLoop,
    "challenge-invalid": challenge('Bearer service="hostile",scope="no realm"'),
    "challenge-broken": bearer({ realm: "http://127.0.0.1:1/token" }),
    "challenge-good": bearer(),
    "realm-file": bearer({ realm: "file:///etc/passwd" }),
    "tarpit-silent": tarpit(silent),
    "tarpit-drip": tarpit(drip),
    "tarpit-token-silent": bearer({ onToken: silent }),
    "tarpit-token-drip": bearer({ onToken: drip }),
    endless,
    "endless-token": bearer({ onToken: endlessBody(200, "application/json", `{"token":"`, "t") }),
    "token-1m": bearer({ tokenSize: MiB }),
    "token-32k": bearer({ tokenSize: 32 * KiB }),
    "lying-blob": paced({ chunk: 64 * KiB, everyMs: 0, corrupt: "all" }),
    "lying-drip": paced({ chunk: 1, everyMs: 200, corrupt: "all" }),
    "lying-last-slow": paced({ chunk: 64 * KiB, everyMs: 1000, corrupt: "last" }),
    "honest-slow": paced({ chunk: 64 * KiB, everyMs: 1000 }),
    "html-manifest": manifest(manifestWithMediaType(fixture, "text/html"), "text/html"),
    "ctl-mediatype": manifest(manifestWithMediaType(fixture, `${OCI_MANIFEST}\r\nX-Injected: yes`), OCI_MANIFEST),
    "example-mediatype": manifest(manifestWithMediaType(fixture, "application/vnd.example+json"), "application/vnd.example+json"),
    "not-json": manifest(new TextEncoder().encode("<html><body>not a manifest</body></html>"), "text/html"),
    "status-500": status(500),
  };
}

// ---------------------------------------------------------------------------------------------

interface State {
  manifests: Map<string, Stored>;
  blobs: Map<string, Uint8Array>;
  tags: Map<string, string[]>;
  behaviours: Map<string, Behaviour>;
}
const state = new WeakMap<HostileUpstream, State>();

function classify(url: URL): { kind: Kind; repo: string; ref: string } {
  const p = url.pathname;
  if (p === "/v2/" || p === "/v2") return { kind: "ping", repo: "", ref: "" };
  if (p === "/token") {
    const scope = url.searchParams.get("scope") ?? "";
    return { kind: "token", repo: scope.split(":")[1] ?? "", ref: "" };
  }
  let m = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/.exec(p);
  if (m) return { kind: m[2] as Kind, repo: m[1]!, ref: decodeURIComponent(m[3]!) };
  m = /^\/v2\/(.+)\/tags\/list$/.exec(p);
  if (m) return { kind: "tags", repo: m[1]!, ref: "" };
  return { kind: "other", repo: "", ref: "" };
}

function record(req: IncomingMessage, into: Recorded[]) {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : v ?? "";
  into.push({ method: req.method ?? "", path: req.url ?? "", headers });
}

/** Listens on host:port (TLS when given); returns a stop that also cuts open connections. */
async function listen(host: string, port: number, tls: ServerTls | undefined, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const options = { maxHeaderSize: 4 * MiB, ...(tls ? { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}) };
  const server: Server = tls ? (createHttps(options, handler) as unknown as Server) : createHttp(options, handler);
  const sockets = new Set<Socket>();
  server.on(tls ? "secureConnection" : "connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  return {
    port: actual,
    stop: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Starts a hostile upstream on `host:80` (or `host:443` with `tls`). */
export async function startHostile(opts: { host: string; tls?: ServerTls }): Promise<HostileUpstream> {
  const fixture = makeImage();
  const st: State = { manifests: new Map(), blobs: new Map(), tags: new Map(), behaviours: new Map(Object.entries(builtins(fixture))) };
  const requests: Recorded[] = [];
  const base = `${opts.tls ? "https" : "http"}://${opts.host}`;
  const hostile: HostileUpstream = {
    host: opts.host, base, requests, sent: new Map(), fixture,
    requestsFor: (prefix) => requests.filter((r) => {
      const url = new URL(r.path, base);
      const c = classify(url);
      return c.repo.startsWith(prefix);
    }),
    add(repo, tag, img) {
      const put = (ref: string, i: Image) => {
        st.manifests.set(`${repo}@${ref}`, { bytes: i.manifest, mediaType: i.mediaType, digest: i.digest });
        st.manifests.set(`${repo}@${i.digest}`, { bytes: i.manifest, mediaType: i.mediaType, digest: i.digest });
        for (const c of i.children) put(c.digest, c);
      };
      put(tag, img);
      for (const b of allBlobs(img)) st.blobs.set(b.digest, b.bytes);
      st.tags.set(repo, [...new Set([...(st.tags.get(repo) ?? []), tag])].sort());
    },
    behave(name, b) {
      st.behaviours.set(name, b);
    },
    stop: async () => {},
  };
  state.set(hostile, st);
  hostile.add("fixture", "v1", fixture);
  const server = await listen(opts.host, opts.tls ? 443 : 80, opts.tls, (req, res) => {
    record(req, requests);
    const url = new URL(req.url ?? "/", base);
    const c = classify(url);
    const behaviour = st.behaviours.get(c.repo.split("/")[0]!) ?? honest;
    const x: Exchange = { ...c, req, res, url, server: hostile };
    // Drain the request body (there is none for GET/HEAD) so the connection stays usable.
    req.resume();
    Promise.resolve(behaviour(x)).catch(() => res.destroy());
  });
  hostile.stop = server.stop;
  return hostile;
}

/**
 * A server that records every request and answers 200 with `body` (bytes, or a function of the
 * path; 404 when it returns undefined). Port 80 (443 with TLS) unless given; 0 picks a free one.
 */
export async function startWitness(opts: {
  host: string;
  port?: number;
  tls?: ServerTls;
  body?: Uint8Array | string | ((path: string) => Uint8Array | string | undefined);
  contentType?: string;
}): Promise<Witness> {
  const requests: Recorded[] = [];
  const server = await listen(opts.host, opts.port ?? (opts.tls ? 443 : 80), opts.tls, (req, res) => {
    record(req, requests);
    req.resume();
    const b = typeof opts.body === "function" ? opts.body(req.url ?? "/") : opts.body ?? "witness";
    if (b === undefined) return json(res, 404, { errors: [{ code: "NAME_UNKNOWN", message: "witness has nothing here" }] });
    const bytes = typeof b === "string" ? Buffer.from(b) : Buffer.from(b);
    res.writeHead(200, { "Content-Type": opts.contentType ?? "application/octet-stream", "Content-Length": String(bytes.length) });
    res.end(req.method === "HEAD" ? undefined : bytes);
  });
  const scheme = opts.tls ? "https" : "http";
  const defaultPort = opts.tls ? 443 : 80;
  return {
    url: `${scheme}://${opts.host}${server.port === defaultPort ? "" : `:${server.port}`}`,
    port: server.port, requests, stop: server.stop,
  };
}

/** Peak resident memory (VmHWM) of a process in bytes, or null when it is gone. */
export function peakRss(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Watches a process's peak memory every 50 ms; past `killAbove` bytes it is killed (the test has
 * failed by then, and an endless body must not take the machine down with it).
 */
export function watchMemory(pid: number, killAbove: number) {
  let peak = 0;
  const poll = () => {
    const p = peakRss(pid);
    if (p === null) return;
    peak = Math.max(peak, p);
    if (p > killAbove) process.kill(pid, "SIGKILL");
  };
  const timer = setInterval(poll, 50);
  return {
    peak: () => {
      poll();
      return peak;
    },
    stop: () => clearInterval(timer),
  };
}
