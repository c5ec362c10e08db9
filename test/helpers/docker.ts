// A private Docker Engine (Debian's docker.io, dockerd 20.10) for e2e tests: its own data root,
// exec root, pid file and socket, no networking of its own (no bridge, no iptables), the vfs
// storage driver, and the cache as its registry mirror. Driven with Debian's /usr/bin/docker:
// a newer CLI earlier on PATH would need buildx for BuildKit builds.
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { requireTool, run, stopProcess, track, unmountUnder } from "./procs.ts";

export const DOCKERD = "/usr/sbin/dockerd";
export const DOCKER = "/usr/bin/docker";

export interface Dockerd {
  dir: string;
  sock: string;
  /** `docker -H unix://SOCK ...args`; throws with the output when it fails unless `allowFail`. */
  docker(args: string[], opts?: { env?: Record<string, string>; cwd?: string; allowFail?: boolean }): Promise<{ stdout: string; stderr: string; code: number }>;
  /** The daemon's log so far. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts dockerd with `--registry-mirror mirrorUrl` (an `http://host:port` URL), that host:port as
 * an insecure registry, plus `insecure` (more host:port entries).
 */
export async function startDockerd(mirrorUrl: string, opts: { insecure?: string[] } = {}): Promise<Dockerd> {
  requireTool(DOCKERD);
  requireTool(DOCKER);
  // A short path: the sockets under it must fit in sun_path (108 bytes).
  const dir = mkdtempSync("/tmp/ocireg-docker-");
  const sock = join(dir, "docker.sock");
  const cliConfig = join(dir, "cli");
  mkdirSync(cliConfig);
  // A daemon.json of its own: the host's /etc/docker/daemon.json must not apply, and dockerd 20.10
  // would write its identity key to /etc/docker/key.json (no command-line flag for it).
  writeFileSync(join(dir, "daemon.json"), JSON.stringify({ "deprecated-key-path": join(dir, "key.json") }) + "\n");
  const logPath = join(dir, "dockerd.log");
  const logFd = openSync(logPath, "a");
  const insecure = [new URL(mirrorUrl).host, ...(opts.insecure ?? [])];
  const proc: Subprocess = track(Bun.spawn([
    DOCKERD, "--config-file", join(dir, "daemon.json"),
    "--data-root", join(dir, "data"), "--exec-root", join(dir, "exec"), "--pidfile", join(dir, "docker.pid"),
    "-H", `unix://${sock}`,
    "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false",
    "--storage-driver=vfs",
    "--registry-mirror", mirrorUrl, ...insecure.flatMap((h) => ["--insecure-registry", h]),
  ], { stdout: logFd, stderr: logFd }));
  closeSync(logFd);
  const log = () => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
  // The CLI gets a config directory of its own too (no contexts, credentials or plugins of the host).
  const docker: Dockerd["docker"] = (args, o = {}) =>
    run([DOCKER, "-H", `unix://${sock}`, ...args], { ...o, env: { DOCKER_CONFIG: cliConfig, ...o.env } });

  const stop = async () => {
    await stopProcess(proc);
    // The containerd dockerd started stops with it (on SIGTERM, and by parent-death signal if killed).
    await unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  };

  const until = Date.now() + 30_000;
  while ((await docker(["version"], { allowFail: true })).code !== 0) {
    if (proc.exitCode !== null || Date.now() > until) {
      const why = `dockerd ${proc.exitCode !== null ? `exited ${proc.exitCode}` : "did not start"}:\n${log()}`;
      await stop();
      throw new Error(why);
    }
    await Bun.sleep(100);
  }
  return { dir, sock, docker, log, stop };
}
