// The main port's listener, and how its certificate changes without a restart: Bun cannot swap a
// listening socket's certificate, so a TLS listener binds with SO_REUSEPORT and a reload binds a
// second one on the same port with the new certificate, then closes the old one gracefully (new
// connections go to the new one; connections already open finish on the old one, never cut).
import type { Server } from "bun";
import type { ServerTls } from "../config/schema.ts";

export interface MainListenerOptions {
  hostname: string;
  port: number;
  idleTimeout: number;
  fetch: (req: Request, server: Server<undefined>) => Promise<Response> | Response;
  error: (err: Error) => Response;
}

/** Bun.serve's TLS options for the serving certificate (PEM text, already read). */
function tlsOf(t: ServerTls) {
  return { cert: t.cert, key: t.key, ca: t.ca, requestCert: t.clientAuth === "verify", rejectUnauthorized: t.clientAuth === "verify" };
}

/**
 * With SO_REUSEPORT a second process of the same user could share the port without an error:
 * a plain bind first makes "address in use" fail the start as before.
 */
function refuseIfTaken(hostname: string, port: number) {
  if (port === 0) return;
  const probe = Bun.listen({ hostname, port, socket: { data() {} } });
  probe.stop(true);
}

export function createMainListener(o: MainListenerOptions, tls: ServerTls | undefined) {
  const serve = (t: ServerTls | undefined, port: number): Server<undefined> => Bun.serve({
    hostname: o.hostname, port, idleTimeout: o.idleTimeout, fetch: o.fetch, error: o.error,
    // development: false keeps Bun from answering a throw with its error page (stack, paths, source).
    development: false,
    ...(t ? { tls: tlsOf(t), reusePort: true } : {}),
  });
  if (tls) refuseIfTaken(o.hostname, o.port);
  let current = serve(tls, o.port);
  /** Listeners replaced by a certificate change, still finishing the connections they had. */
  const retired = new Set<Server<undefined>>();

  return {
    get server() {
      return current;
    },
    /** Requests in flight on every listener, the retired ones' too (until their responses end). */
    get pendingRequests() {
      let n = current.pendingRequests;
      for (const s of retired) n += s.pendingRequests;
      return n;
    },
    /** Serves new connections with another certificate; open ones finish on the old listener. */
    setTls(t: ServerTls) {
      const next = serve(t, current.port!);
      const old = current;
      current = next;
      retired.add(old);
      void old.stop(false).finally(() => retired.delete(old));
    },
    /** Stops accepting connections; resolves when every open one (old listeners' too) is done. */
    close(): Promise<unknown> {
      return Promise.all([current, ...retired].map((s) => s.stop(false)));
    },
    /** Cuts whatever is still open. */
    async kill() {
      for (const s of [current, ...retired]) await s.stop(true);
    },
  };
}
