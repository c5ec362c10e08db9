// configure-node's file logic on temporary directories: hosts.toml blocks beside foreign content,
// refusals that name the file, containerd's config_path for versions 2 and 3, k3s's registries.yaml
// restored byte for byte, and names that are not hosts.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { UsageError } from "../../src/cli/command.ts";
import { applyChanges, NodeConfigRefused } from "../../src/cli/node-config/changes.ts";
import { planNode, type NodeOptions } from "../../src/cli/node-config/plan.ts";

let dir: string;
let certs: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-node-"));
  certs = join(dir, "certs.d");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const MIRROR = "http://10.0.0.10:31080";
function apply(o: Partial<NodeOptions>) {
  const plan = planNode({ containerdDir: certs, checkConfig: join(dir, "none.toml"), mirror: MIRROR, ...o });
  applyChanges(plan.changes);
  return plan;
}
/** Every file under `root` with its bytes. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) {
        out[`${p}/`] = "";
        walk(p);
      } else out[p] = readFileSync(p, "utf8");
    }
  };
  if (existsSync(root)) walk(root);
  return out;
}
const hosts = (r: string) => Bun.TOML.parse(readFileSync(join(certs, r, "hosts.toml"), "utf8")) as { server?: string; host: Record<string, { capabilities: string[]; ca?: string }> };

describe("hosts.toml", () => {
  test("names the cache first and the upstream as server, per registry", () => {
    apply({ registries: ["docker.io", "registry.k8s.io", "127.0.0.1:5000"] });
    expect(hosts("docker.io")).toEqual({ server: "https://registry-1.docker.io", host: { [MIRROR]: { capabilities: ["pull", "resolve"] } } });
    expect(hosts("registry.k8s.io").server).toBe("https://registry.k8s.io");
    expect(hosts("127.0.0.1:5000").server).toBe("http://127.0.0.1:5000");
  });

  test("--all writes _default without a server, so each registry falls back to itself", () => {
    apply({ registries: "all" });
    expect(hosts("_default")).toEqual({ host: { [MIRROR]: { capabilities: ["pull", "resolve"] } } });
  });

  test("files 0644 and directories 0755; a second run plans nothing", () => {
    apply({ registries: ["docker.io"] });
    expect(statSync(join(certs, "docker.io", "hosts.toml")).mode & 0o777).toBe(0o644);
    expect(statSync(join(certs, "docker.io")).mode & 0o777).toBe(0o755);
    expect(apply({ registries: ["docker.io"] }).changes).toEqual([]);
  });

  test("keeps foreign content, puts the cache first, and --remove restores it byte for byte", () => {
    mkdirSync(join(certs, "quay.io"), { recursive: true });
    const foreign = "# mine\nserver = \"https://quay.io\"\nskip_verify = false\n\n[host.\"https://other:5000\"]\n  capabilities = [\"pull\"]\n";
    writeFileSync(join(certs, "quay.io", "hosts.toml"), foreign);
    const before = snapshot(certs);
    apply({ registries: ["quay.io", "docker.io"] });
    const h = hosts("quay.io");
    expect(h.server).toBe("https://quay.io");
    expect(Object.keys(h.host)).toEqual([MIRROR, "https://other:5000"]);
    apply({ remove: true });
    expect(snapshot(certs)).toEqual(before);
  });

  test("a new registry list takes the old registries' blocks out", () => {
    apply({ registries: ["docker.io", "quay.io"] });
    apply({ registries: ["quay.io"] });
    expect(readdirSync(certs)).toEqual(["quay.io"]);
  });

  test("copies the CA beside hosts.toml for an https mirror, and --remove deletes it", () => {
    const ca = join(dir, "ca.pem");
    writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    apply({ registries: ["docker.io"], mirror: "https://cache.internal:8443", caFile: ca });
    const caPath = hosts("docker.io").host["https://cache.internal:8443"]!.ca!;
    expect(readFileSync(caPath, "utf8")).toEndWith(readFileSync(ca, "utf8"));
    apply({ remove: true });
    expect(snapshot(certs)).toEqual({});
  });

  const refusals: [string, () => void, string][] = [
    ["a foreign table for the same mirror", () => {
      mkdirSync(join(certs, "docker.io"), { recursive: true });
      writeFileSync(join(certs, "docker.io", "hosts.toml"), `[host."${MIRROR}"]\n  capabilities = ["pull"]\n`);
    }, "docker.io/hosts.toml"],
    ["invalid TOML", () => {
      mkdirSync(join(certs, "docker.io"), { recursive: true });
      writeFileSync(join(certs, "docker.io", "hosts.toml"), "server = \n");
    }, "docker.io/hosts.toml"],
    ["a symbolic link as hosts.toml", () => {
      mkdirSync(join(certs, "docker.io"), { recursive: true });
      writeFileSync(join(dir, "elsewhere"), "");
      symlinkSync(join(dir, "elsewhere"), join(certs, "docker.io", "hosts.toml"));
    }, "docker.io/hosts.toml"],
  ];
  for (const [label, setup, file] of refusals) {
    test(`refuses ${label}, naming the file, and changes nothing`, () => {
      setup();
      const before = snapshot(certs);
      let err: unknown;
      try {
        apply({ registries: ["docker.io"] });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NodeConfigRefused);
      expect((err as NodeConfigRefused).path).toEndWith(file);
      expect(snapshot(certs)).toEqual(before);
    });
  }

  for (const bad of ["../x", "..", "a/b", "docker.io/../../etc", "", " ", "-x.io", "x_y.io", "[::1]:5000"]) {
    test(`refuses the registry name ${JSON.stringify(bad)}`, () => {
      expect(() => planNode({ containerdDir: certs, mirror: MIRROR, registries: [bad] })).toThrow(UsageError);
    });
  }

  for (const bad of ["ftp://x", "http://u:p@x", "http://x/v2", "http://x?ns=a", "not a url"]) {
    test(`refuses the mirror ${bad}`, () => {
      expect(() => planNode({ containerdDir: certs, mirror: bad, registries: "all" })).toThrow(UsageError);
    });
  }
});

describe("containerd config_path", () => {
  const cfg = () => join(dir, "config.toml");
  const read = () => Bun.TOML.parse(readFileSync(cfg(), "utf8")) as { plugins: Record<string, { registry: { config_path: string } }> };

  test("is printed when missing, for version 2 and 3", () => {
    const notes = planNode({ containerdDir: certs, mirror: MIRROR, registries: "all", checkConfig: cfg() }).notes.join("\n");
    expect(notes).toContain(`[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "${certs}"`);
    expect(notes).toContain(`[plugins."io.containerd.cri.v1.images".registry]\n  config_path = "${certs}"`);
  });

  test("sets it in a version 2 file's existing registry table, says to restart, and --remove restores the file", () => {
    const original = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  # keep me\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n";
    writeFileSync(cfg(), original);
    const plan = apply({ registries: "all", containerdConfig: cfg() });
    expect(plan.notes.join()).toContain("restart containerd");
    expect(read().plugins["io.containerd.grpc.v1.cri"]!.registry.config_path).toBe(certs);
    expect(apply({ registries: "all", containerdConfig: cfg() }).changes).toEqual([]);
    apply({ remove: true, containerdConfig: cfg() });
    expect(readFileSync(cfg(), "utf8")).toBe(original);
  });

  test("adds the version 3 table to a containerd 2.x config", () => {
    writeFileSync(cfg(), "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\"]\n  enable_selinux = false\n");
    apply({ registries: "all", containerdConfig: cfg() });
    expect(read().plugins["io.containerd.cri.v1.images"]!.registry.config_path).toBe(certs);
  });

  test("creates a missing config and --remove deletes it", () => {
    apply({ registries: "all", containerdConfig: cfg() });
    expect(read().plugins["io.containerd.grpc.v1.cri"]!.registry.config_path).toBe(certs);
    apply({ remove: true, containerdConfig: cfg() });
    expect(existsSync(cfg())).toBe(false);
  });

  for (const [label, text] of [
    ["another config_path", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/elsewhere\"\n"],
    ["registry mirrors", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://x\"]\n"],
    ["version 1", "[plugins.cri]\n"],
  ] as const) {
    test(`refuses a config with ${label}`, () => {
      writeFileSync(cfg(), text);
      expect(() => apply({ registries: "all", containerdConfig: cfg() })).toThrow(NodeConfigRefused);
      expect(readFileSync(cfg(), "utf8")).toBe(text);
    });
  }
});

describe("k3s registries.yaml", () => {
  const file = () => join(dir, "registries.yaml");

  test("names the mirror for each registry, or \"*\" for all", () => {
    apply({ k3sFile: file(), registries: ["docker.io", "quay.io"] });
    expect(parseYaml(readFileSync(file(), "utf8"))).toEqual({ mirrors: { "docker.io": { endpoint: [MIRROR] }, "quay.io": { endpoint: [MIRROR] } } });
    apply({ k3sFile: file(), registries: "all" });
    expect(parseYaml(readFileSync(file(), "utf8"))).toEqual({ mirrors: { "*": { endpoint: [MIRROR] } } });
  });

  test("keeps an existing file's entries and --remove restores it byte for byte", () => {
    const original = "# ops\nmirrors:\n  harbor.corp:\n    endpoint: [\"https://h\"]\nconfigs:\n  harbor.corp:\n    auth: { username: a, password: b }\n";
    writeFileSync(file(), original);
    apply({ k3sFile: file(), registries: ["docker.io"] });
    const y = parseYaml(readFileSync(file(), "utf8")) as { mirrors: Record<string, unknown>; configs: Record<string, unknown> };
    expect(Object.keys(y.mirrors)).toEqual(["harbor.corp", "docker.io"]);
    expect(apply({ k3sFile: file(), registries: ["docker.io"] }).changes).toEqual([]);
    apply({ k3sFile: file(), remove: true });
    expect(snapshot(dir)).toEqual({ [file()]: original });
  });

  test("refuses a file changed since it wrote it, and a registry the file already mirrors", () => {
    apply({ k3sFile: file(), registries: ["docker.io"] });
    writeFileSync(file(), `${readFileSync(file(), "utf8")}# edited\n`);
    expect(() => apply({ k3sFile: file(), remove: true })).toThrow(NodeConfigRefused);
    rmSync(dir, { recursive: true });
    mkdirSync(dir);
    writeFileSync(file(), "mirrors:\n  docker.io:\n    endpoint: [\"https://x\"]\n");
    expect(() => apply({ k3sFile: file(), registries: ["docker.io"] })).toThrow(NodeConfigRefused);
  });
});
