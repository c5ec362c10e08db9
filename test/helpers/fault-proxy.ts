// A fault-injecting proxy in front of a real upstream: throttles bodies, cuts them, corrupts
// them, or answers with an error status. Built on node:http because Bun.serve drops a
// Content-Length set on a streamed body, and real upstreams send one.
import { createServer } from "node:http";

export interface Faults {
  /** Bytes per second for response bodies (0: unthrottled). */
  throttle?: number;
  /** Answer every request with this status instead of forwarding. */
  status?: number;
  /** Close blob bodies after this many bytes. */
  cutAfter?: number;
  /** Flip a byte in every blob body. */
  corrupt?: boolean;
}

export interface FaultProxy {
  base: string;
  faults: Faults;
  /** `METHOD path` of every request received. */
  log: string[];
  stop(): Promise<void>;
}

export async function startFaultProxy(opts: { hostname: string; port: number; target: string }): Promise<FaultProxy> {
  const proxy: FaultProxy = { base: `http://${opts.hostname}:${opts.port}`, faults: {}, log: [], stop: async () => {} };
  const server = createServer(async (req, res) => {
    const path = req.url ?? "/";
    proxy.log.push(`${req.method} ${path}`);
    const f = { ...proxy.faults };
    if (f.status) {
      res.writeHead(f.status, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "injected" }] }));
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && k !== "host") headers[k] = v;
    const up = await fetch(`${opts.target}${path}`, { method: req.method, headers, redirect: "manual", decompress: false } as RequestInit);
    const out: Record<string, string> = {};
    up.headers.forEach((v, k) => (out[k] = v));
    res.writeHead(up.status, out);
    if (!up.body || req.method === "HEAD") return void res.end();
    const isBlob = path.includes("/blobs/");
    let sent = 0;
    for await (const value of up.body) {
      let chunk = value;
      if (isBlob && f.corrupt && sent === 0) {
        chunk = new Uint8Array(value);
        chunk[0] = chunk[0]! ^ 0xff;
      }
      if (isBlob && f.cutAfter !== undefined && sent + chunk.byteLength > f.cutAfter) {
        res.write(chunk.subarray(0, f.cutAfter - sent));
        res.destroy();
        return;
      }
      sent += chunk.byteLength;
      if (f.throttle) await Bun.sleep((chunk.byteLength / f.throttle) * 1000);
      if (res.destroyed) return;
      res.write(chunk);
    }
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(opts.port, opts.hostname, resolve));
  proxy.stop = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return proxy;
}
