// Real registry clients driven the way users set them up: skopeo (in-path form), containerd's
// ctr with a hosts.toml mirror (?ns= form) or its CRI plugin (cri.ts), podman with a
// registries.conf mirror, buildah and crane. Docker Engine has its own helper (docker.ts).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { requireTool, run, stopProcess, track, unmountUnder, waitFor } from "./procs.ts";

function tmp(prefix: string) {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** `skopeo copy docker://REF dir:OUT`; returns the digest skopeo computed for the manifest. */
/** `transport` defaults to `docker` (a registry); `oci-archive` reads an OCI layout tar (`FILE:REF`). */
export async function skopeoCopy(ref: string, opts: { all?: boolean; extra?: string[]; tlsVerify?: boolean; transport?: "docker" | "oci-archive" } = {}) {
  requireTool("/usr/bin/skopeo");
  const out = tmp("ocireg-skopeo-");
  const digestFile = join(out, "digest");
  await run(["skopeo", "--insecure-policy", "copy", `--src-tls-verify=${opts.tlsVerify ?? false}`, "--retry-times", "0",
    ...(opts.all ? ["--all"] : []), ...(opts.extra ?? []),
    "--digestfile", digestFile, opts.transport === "oci-archive" ? `oci-archive:${ref}` : `docker://${ref}`, `dir:${join(out, "image")}`]);
  const digest = (await Bun.file(digestFile).text()).trim();
  return { dir: join(out, "image"), digest, cleanup: () => rmSync(out, { recursive: true, force: true }) };
}

export async function skopeoInspectRaw(ref: string, extra: string[] = []) {
  const r = await run(["skopeo", "inspect", "--raw", "--tls-verify=false", ...extra, `docker://${ref}`]);
  return r.stdout;
}

export interface Containerd {
  address: string;
  dir: string;
  /** The generated config.toml it runs with (tests may edit it, then `restart`). */
  config: string;
  /** Pulls through a hosts.toml mirror for `upstreamHost` pointing at `mirrorUrl`; returns the image's target digest. */
  pull(ref: string, upstreamHost: string, mirrorUrl: string, extra?: string[]): Promise<string>;
  /** Pulls with the hosts.toml files already in `hostsDir` (a certs.d directory); returns the target digest. */
  pullWithHosts(ref: string, hostsDir: string, extra?: string[]): Promise<string>;
  /** Stops containerd and starts it again with the same config, root and state. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The CRI plugin (Kubernetes' image and runtime services on the same socket) for image pulls only:
 * no cgroups, AppArmor or OOM-score changes on the host, CNI pointed at empty private directories
 * (it logs that it has no network config and serves images anyway), a random streaming port.
 * Its registry table is left out: `configure-node --containerd-config` adds `config_path`.
 */
const criPlugin = (dir: string) => `
[plugins."io.containerd.grpc.v1.cri"]
  disable_cgroup = true
  disable_apparmor = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "${join(dir, "cni-bin")}"
  conf_dir = "${join(dir, "cni-conf")}"
`;

/** A private containerd (own root, state and socket); `cri` enables its CRI plugin (see criPlugin). */
export async function startContainerd(opts: { cri?: boolean } = {}): Promise<Containerd> {
  requireTool("/usr/bin/containerd");
  const dir = tmp("ocireg-containerd-");
  const address = join(dir, "containerd.sock");
  const config = join(dir, "config.toml");
  writeFileSync(config, `version = 2
root = "${join(dir, "root")}"
state = "${join(dir, "state")}"
disabled_plugins = [${opts.cri ? "" : '"io.containerd.grpc.v1.cri"'}]
[grpc]
  address = "${address}"
[debug]
  level = "warn"
${opts.cri ? criPlugin(dir) : ""}`);
  let proc: Subprocess;
  const start = async () => {
    // Its log goes to a file (a pipe nobody reads would fill up and stall it).
    proc = track(Bun.spawn(["containerd", "--config", config], { stdout: "ignore", stderr: Bun.file(join(dir, "containerd.log")) }));
    const p = proc;
    await waitFor("containerd", async () => {
      if (p.exitCode !== null) throw new Error(`containerd exited ${p.exitCode}:\n${readFileSync(join(dir, "containerd.log"), "utf8")}`);
      return (await run(["ctr", "--address", address, "version"], { allowFail: true })).code === 0;
    });
  };
  await start();
  const pullWithHosts = async (ref: string, hostsDir: string, extra: string[] = []) => {
    await run(["ctr", "--address", address, "-n", "test", "images", "pull", "--hosts-dir", hostsDir, ...extra, ref]);
    const ls = await run(["ctr", "--address", address, "-n", "test", "images", "ls"]);
    const line = ls.stdout.split("\n").find((l) => l.startsWith(ref + " "));
    const digest = line?.match(/sha256:[a-f0-9]{64}/)?.[0];
    if (!digest) throw new Error(`ctr images ls does not show ${ref}:\n${ls.stdout}`);
    return digest;
  };
  return {
    address, dir, config,
    async pull(ref, upstreamHost, mirrorUrl, extra = []) {
      const hostsDir = join(dir, "hosts");
      mkdirSync(join(hostsDir, upstreamHost), { recursive: true });
      // The server is unreachable on purpose: a broken mirror cannot be hidden by a fallback.
      writeFileSync(join(hostsDir, upstreamHost, "hosts.toml"),
        `server = "http://127.0.0.1:1"\n\n[host."${mirrorUrl}"]\n  capabilities = ["pull", "resolve"]\n`);
      return pullWithHosts(ref, hostsDir, extra);
    },
    pullWithHosts,
    async restart() {
      await stopProcess(proc);
      await start();
    },
    async stop() {
      await stopProcess(proc);
      await run(["umount", "-R", join(dir, "root")], { allowFail: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `podman pull` through a registries.conf mirror; returns the pulled image's manifest digest. */
export async function podmanPull(ref: string, upstreamHost: string, mirror: string) {
  requireTool("/usr/bin/podman");
  const dir = tmp("ocireg-podman-");
  const conf = join(dir, "registries.conf");
  writeFileSync(conf, `[[registry]]\nprefix = "${upstreamHost}"\nlocation = "${upstreamHost}"\n\n[[registry.mirror]]\nlocation = "${mirror}"\ninsecure = true\n`);
  const base = ["podman", "--root", join(dir, "root"), "--runroot", join(dir, "run"), "--storage-driver", "vfs",
    "--cgroup-manager", "cgroupfs", "--events-backend", "file"];
  const env = { CONTAINERS_REGISTRIES_CONF: conf };
  try {
    await run([...base, "pull", "--tls-verify=false", ref], { env });
    const r = await run([...base, "image", "inspect", "--format", "{{.Digest}}", ref], { env });
    return r.stdout.trim();
  } finally {
    await run([...base, "system", "reset", "--force"], { env, allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Buildah {
  dir: string;
  /** `buildah --root R --runroot RR --storage-driver vfs --registries-conf C ...args`. */
  run(args: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  cleanup(): Promise<void>;
}

/** A buildah with storage and a registries.conf (`registriesConf`, TOML text) of its own. */
export function makeBuildah(registriesConf: string): Buildah {
  requireTool("/usr/bin/buildah");
  const dir = tmp("ocireg-buildah-");
  const conf = join(dir, "registries.conf");
  writeFileSync(conf, registriesConf);
  const base = ["buildah", "--root", join(dir, "root"), "--runroot", join(dir, "run"), "--storage-driver", "vfs",
    "--registries-conf", conf];
  return {
    dir,
    run: (args) => run([...base, ...args]),
    async cleanup() {
      await run([...base, "rmi", "--all", "--force"], { allowFail: true });
      await unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** crane (go-containerregistry), as scripts/build-crane.sh installs it. */
export const CRANE = process.env.CRANE ?? "/usr/local/bin/crane";

export function crane(args: string[], opts: { cwd?: string } = {}) {
  requireTool(CRANE);
  return run([CRANE, ...args], opts);
}
