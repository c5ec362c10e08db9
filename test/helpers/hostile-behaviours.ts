// The hostile upstream's behaviours (see hostile-upstream.ts): each answers a request the way a
// registry, honest or not, would — redirects, challenges, tarpits, endless bodies, lying blobs.
import type { ServerResponse } from "node:http";
import { digestOf } from "../../src/oci/digest.ts";
import { OCI_INDEX, OCI_MANIFEST } from "../../src/oci/mediatypes.ts";
import type { Behaviour, Exchange, HostileUpstream, Recorded } from "./hostile-upstream.ts";
import { allBlobs, makeImage, type Image } from "./images.ts";

export const KiB = 1024;
export const MiB = 1024 * KiB;
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

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
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

export type Stored = { bytes: Uint8Array; mediaType: string; digest: string };

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

export function builtins(fixture: Image): Record<string, Behaviour> {
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

/** What a running hostile upstream keeps (set by startHostile, read by behaviours). */
export interface State {
  manifests: Map<string, Stored>;
  blobs: Map<string, Uint8Array>;
  tags: Map<string, string[]>;
  behaviours: Map<string, Behaviour>;
}
export const state = new WeakMap<HostileUpstream, State>();
