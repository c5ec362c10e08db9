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
import { builtins, honest, json, MiB, state, type State } from "./hostile-behaviours.ts";
import { allBlobs, makeImage, type Image } from "./images.ts";

export * from "./hostile-behaviours.ts";

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

// ---------------------------------------------------------------------------------------------



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
