// configure-node as one plan: the hosts.toml files (or k3s's registries.yaml) and containerd's
// config_path, written or removed together, plus what the operator has to do by hand.
import { readFileSync, statSync } from "node:fs";
import { UsageError } from "../command.ts";
import { isDir, type Change } from "./changes.ts";
import { DEFAULT_CONTAINERD_CONFIG, configPathAdvice, planContainerdConfig, planRemoveContainerdConfig } from "./containerd-config.ts";
import { DEFAULT_HOST, checkRegistry, configuredRegistries, planHosts, planRemoveHosts } from "./hosts.ts";
import { K3S_ALL, planK3s, planRemoveK3s } from "./k3s.ts";

export interface NodeOptions {
  /** The cache as the node reaches it (an origin: scheme, host, port). */
  mirror?: string;
  caFile?: string;
  /** Registry hosts, or "all". */
  registries?: string[] | "all";
  containerdDir: string;
  k3sFile?: string;
  /** Set config_path in this containerd config.toml. */
  containerdConfig?: string;
  /** Where to look for config_path when not setting it (advice only). */
  checkConfig?: string;
  remove?: boolean;
}

export interface NodePlan {
  changes: Change[];
  /** Things the operator must know or do (config_path missing, restart containerd). */
  notes: string[];
}

/** The cache's URL as containerd's host key: http(s)://host[:port], nothing else. */
export function parseMirror(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--mirror "${value}" is not a URL; give the cache as the node reaches it, e.g. http://10.0.0.10:31080`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--mirror "${value}" must be http:// or https://`);
  if (url.username || url.password || (url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) {
    throw new UsageError(`--mirror "${value}" must be only scheme, host and port (no credentials, path or query), e.g. ${url.protocol}//${url.host}`);
  }
  return `${url.protocol}//${url.host}`;
}

function readCa(file: string, mirror: string): string {
  if (!mirror.startsWith("https:")) throw new UsageError(`--ca is for an https --mirror; ${mirror} is plain http`);
  let pem: string;
  try {
    if (statSync(file).size > 1024 * 1024) throw new UsageError(`--ca ${file} is larger than 1 MiB; give the CA certificate only`);
    pem = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--ca ${file}: cannot read it (${(err as Error).message})`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new UsageError(`--ca ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return pem.endsWith("\n") ? pem : `${pem}\n`;
}

export function planNode(o: NodeOptions): NodePlan {
  if (o.remove) {
    const changes = o.k3sFile ? planRemoveK3s(o.k3sFile) : configuredRegistries(o.containerdDir).flatMap((r) => planRemoveHosts(o.containerdDir, r));
    if (o.containerdConfig) changes.push(...planRemoveContainerdConfig(o.containerdConfig));
    const notes = o.containerdConfig && changes.some((c) => c.path === o.containerdConfig) ? [`restart containerd so it stops reading ${o.containerdDir} (systemctl restart containerd)`] : [];
    return { changes, notes };
  }
  if (!o.mirror) throw new UsageError("--mirror URL is required (the cache as this node reaches it), or --remove");
  if (!o.registries) throw new UsageError("give --registries docker.io,registry.k8s.io,… or --all");
  const mirror = parseMirror(o.mirror);
  const caPem = o.caFile ? readCa(o.caFile, mirror) : null;
  if (o.k3sFile) {
    const names = o.registries === "all" ? [K3S_ALL] : o.registries.map(checkRegistry);
    return { changes: planK3s(o.k3sFile, names, mirror, caPem), notes: ["k3s and RKE2 read registries.yaml when they start: restart k3s (or rke2-server / rke2-agent)"] };
  }
  const names = o.registries === "all" ? [DEFAULT_HOST] : [...new Set(o.registries.map(checkRegistry))];
  const changes: Change[] = isDir(o.containerdDir) ? [] : [{ kind: "mkdir", path: o.containerdDir }];
  // Registries configured by an earlier run and no longer asked for lose their block.
  for (const r of configuredRegistries(o.containerdDir)) if (!names.includes(r)) changes.push(...planRemoveHosts(o.containerdDir, r));
  for (const registry of names) changes.push(...planHosts({ dir: o.containerdDir, registry, mirror, caPem }));
  const notes: string[] = [];
  if (o.containerdConfig) {
    const config = planContainerdConfig(o.containerdConfig, o.containerdDir);
    changes.push(...config);
    if (config.length) notes.push(`restart containerd so it reads ${o.containerdDir} (systemctl restart containerd); hosts.toml changes after that need no restart`);
  } else {
    const advice = configPathAdvice(o.checkConfig ?? DEFAULT_CONTAINERD_CONFIG, o.containerdDir);
    if (advice) notes.push(advice);
  }
  return { changes, notes };
}
