// A private podman (its own root, vfs, cgroupfs, file events) that runs one container and removes
// every trace of it when stopped.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireTool, run } from "./procs.ts";

export interface PodmanContainer {
  name: string;
  /** `podman OPTIONS...` with this instance's storage flags. */
  podman(args: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  /** The container's main process as the host sees it. */
  pid(): Promise<number>;
  /** Where the volume mounted at `destination` lives on the host. */
  volumeSource(destination: string): Promise<string>;
  logs(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * `podman run -d --network host IMAGE ...args`. Podman's default rlimits are above this
 * machine's hard limits, hence the explicit ulimits (see TESTING.md).
 */
export async function runContainer(image: string, args: string[], opts: { volumes?: string[] } = {}): Promise<PodmanContainer> {
  requireTool("/usr/bin/podman");
  const dir = mkdtempSync(join(tmpdir(), "ocireg-podman-"));
  const base = ["podman", "--root", join(dir, "root"), "--runroot", join(dir, "run"), "--storage-driver", "vfs",
    "--cgroup-manager", "cgroupfs", "--events-backend", "file"];
  const name = `ociregistry-test-${process.pid}`;
  const podman = (a: string[]) => run([...base, ...a], { allowFail: true });
  const container: PodmanContainer = {
    name, podman,
    async pid() {
      const r = await podman(["inspect", "--format", "{{.State.Pid}}", name]);
      return Number(r.stdout.trim());
    },
    async volumeSource(destination) {
      const r = await podman(["inspect", "--format", "{{json .Mounts}}", name]);
      const mounts = JSON.parse(r.stdout) as { Destination: string; Source: string }[];
      const m = mounts.find((x) => x.Destination === destination);
      if (!m) throw new Error(`no volume at ${destination}: ${r.stdout}`);
      return m.Source;
    },
    async logs() {
      const r = await podman(["logs", name]);
      return r.stdout + r.stderr;
    },
    async stop() {
      await podman(["rm", "--force", "--time", "0", name]);
      await podman(["system", "reset", "--force"]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const volumes = (opts.volumes ?? []).flatMap((v) => ["--volume", v]);
  const r = await podman(["run", "--detach", "--name", name, "--network", "host",
    "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", ...volumes, image, ...args]);
  if (r.code !== 0) {
    await container.stop();
    throw new Error(`podman run ${image} failed:\n${r.stdout}\n${r.stderr}`);
  }
  return container;
}
