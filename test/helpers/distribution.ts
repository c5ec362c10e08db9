// A real upstream: CNCF distribution (Debian's docker-registry) on a loopback address, with its
// access log parsed so tests can count the requests it received.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool, stopProcess, track, waitFor } from "./procs.ts";
import type { Subprocess } from "bun";

export interface DistributionOptions {
  /** `127.0.0.2:80` */
  addr: string;
  tls?: { cert: string; key: string; clientCas?: string[] };
  /** Extra YAML appended to the config (auth sections). */
  extraYaml?: string;
}

export interface Distribution {
  addr: string;
  base: string;
  dir: string;
  /** Requests received so far, as `METHOD path` lines. */
  requests(): string[];
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export async function startDistribution(opts: DistributionOptions): Promise<Distribution> {
  requireTool("/usr/bin/docker-registry");
  const dir = mkdtempSync(join(tmpdir(), "ocireg-upstream-"));
  // Its storage is gone with the test run (stop() keeps it: restart() serves the same data).
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const tls = opts.tls
    ? `  tls:\n    certificate: ${opts.tls.cert}\n    key: ${opts.tls.key}\n` +
      (opts.tls.clientCas ? `    clientcas:\n${opts.tls.clientCas.map((c) => `      - ${c}`).join("\n")}\n` : "")
    : "";
  writeFileSync(join(dir, "config.yml"), `version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${join(dir, "data")}
  delete:
    enabled: true
http:
  addr: ${opts.addr}
${tls}${opts.extraYaml ?? ""}`);
  const logPath = join(dir, "access.log");
  const scheme = opts.tls ? "https" : "http";
  const host = opts.addr.endsWith(scheme === "https" ? ":443" : ":80") ? opts.addr.replace(/:\d+$/, "") : opts.addr;
  const base = `${scheme}://${host}`;
  let proc: Subprocess;
  const [hostname, port] = opts.addr.split(":");
  const listening = async () => {
    try {
      const socket = await Bun.connect({ hostname: hostname!, port: Number(port), socket: { data() {} } });
      socket.end();
      return true;
    } catch {
      return false;
    }
  };
  const start = async () => {
    // Readiness is a TCP connect, so the address must not already be taken by someone else.
    if (await listening()) throw new Error(`${opts.addr} is already in use; stop whatever listens there`);
    const out = Bun.file(logPath);
    const prev = (await out.exists()) ? await out.bytes() : new Uint8Array();
    proc = track(Bun.spawn(["/usr/bin/docker-registry", "serve", join(dir, "config.yml")], {
      stdout: "pipe", stderr: "pipe",
    }));
    // The access log goes to stdout, errors to stderr: append both to the log file as they arrive.
    const sink = Bun.file(logPath).writer();
    sink.write(prev);
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) {
        sink.write(chunk);
        sink.flush();
      }
    };
    void Promise.all([pump(proc.stdout as ReadableStream<Uint8Array>), pump(proc.stderr as ReadableStream<Uint8Array>)]).then(() => sink.end());
    await waitFor(`distribution on ${opts.addr}`, async () => {
      if (proc.exitCode !== null) throw new Error(`docker-registry exited: ${readFileSync(logPath, "utf8")}`);
      // A TCP connect: with client-certificate TLS an HTTP probe would be refused at the handshake.
      return listening();
    }).catch((e) => {
      proc.kill("SIGKILL");
      throw e;
    });
  };
  await start();
  return {
    addr: opts.addr, base, dir,
    requests() {
      const text = readFileSync(logPath, "utf8");
      return [...text.matchAll(/\] "([A-Z]+) (\S+) HTTP\/[\d.]+"/g)].map((m) => `${m[1]} ${m[2]}`);
    },
    async stop() {
      await stopProcess(proc);
    },
    async restart() {
      await start();
    },
  };
}
