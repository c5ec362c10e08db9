// containerd's certs.d: one `<registry>/hosts.toml` per registry (or `_default` for all) that
// lists the cache as the first host and keeps the upstream as `server`, the fallback containerd
// uses when the cache does not answer. Only the marked block is configure-node's.
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../command.ts";
import { NodeConfigRefused, isDir, readIfFile, type Change } from "./changes.ts";
import { findBlock, parseToml, renderBlock, sameValue, type Created } from "./markers.ts";

/** containerd's name for "every registry without a directory of its own". */
export const DEFAULT_HOST = "_default";
/** Marks a CA file as configure-node's (PEM readers skip text before the BEGIN line). */
export const CA_MARK = "# Written by ociregistry configure-node: the CA of the cache's certificate.\n";
export const CA_NAME = "ociregistry-ca.crt";
const CAPABILITIES = ["pull", "resolve"];
const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const REGISTRY = new RegExp(`^${LABEL}(?:\\.${LABEL})*(?::[0-9]{1,5})?$`);

/** A registry name as a directory name: a host with an optional port, nothing that walks paths. */
export function checkRegistry(name: string): string {
  const n = name.trim().toLowerCase();
  if (!REGISTRY.test(n) || n.length > 253) {
    throw new UsageError(`"${name}" is not a registry host (like docker.io, registry.k8s.io or harbor.corp:5000): give host names, or --all`);
  }
  return n;
}

/** What containerd itself would use for `registry` without a hosts.toml: the fallback. */
export function upstreamServer(registry: string): string | null {
  if (registry === DEFAULT_HOST) return null; // containerd falls back to each registry's own host
  if (registry === "docker.io") return "https://registry-1.docker.io";
  const host = registry.replace(/:[0-9]+$/, "");
  // containerd speaks plain HTTP to a loopback registry by default; the fallback must match.
  if (host === "localhost" || /^127\./.test(host)) return `http://${registry}`;
  return `https://${registry}`;
}

const q = (s: string) => JSON.stringify(s);

export function hostsBody(registry: string, mirror: string, caPath: string | null, withServer: boolean): string {
  const server = withServer ? upstreamServer(registry) : null;
  return `${server ? `server = ${q(server)}\n\n` : ""}[host.${q(mirror)}]\n  capabilities = ${JSON.stringify(CAPABILITIES).replaceAll(",", ", ")}\n` +
    (caPath ? `  ca = ${q(caPath)}\n` : "");
}

export interface HostsTarget {
  dir: string;
  registry: string;
  mirror: string;
  /** The PEM text of the cache's CA, copied beside hosts.toml. */
  caPem: string | null;
}

/** The changes that make `<dir>/<registry>/hosts.toml` pull through the mirror (none when it already does). */
export function planHosts(t: HostsTarget): Change[] {
  const regDir = join(t.dir, t.registry);
  const file = join(regDir, "hosts.toml");
  const caPath = join(regDir, CA_NAME);
  const dirExists = isDir(regDir);
  const existing = dirExists ? readIfFile(file) : null;
  const found = existing === null ? null : findBlock(file, existing);
  const base = found ? found.rest : (existing ?? "");
  const created: Created = found ? found.created : { file: existing === null, directory: !dirExists };
  const parsed = parseToml(file, base);
  const hosts = (parsed.host ?? {}) as Record<string, unknown>;
  if (hosts[t.mirror] !== undefined) {
    throw new NodeConfigRefused(file, `already has a [host."${t.mirror}"] table that configure-node did not write; remove it by hand or leave this registry out`);
  }
  const withServer = parsed.server === undefined;
  const block = renderBlock(hostsBody(t.registry, t.mirror, t.caPem ? caPath : null, withServer), created);
  // Top-level keys must stay above every [table], so the block goes before the first table.
  const at = found ? found.at : firstTable(base);
  if (at === base.length && base !== "" && !base.endsWith("\n")) {
    throw new NodeConfigRefused(file, "does not end with a newline; add one so configure-node can append its block");
  }
  const next = base.slice(0, at) + block + base.slice(at);
  const server = withServer ? upstreamServer(t.registry) : null;
  const expected = {
    ...parsed, ...(server ? { server } : {}),
    host: { ...hosts, [t.mirror]: { capabilities: CAPABILITIES, ...(t.caPem ? { ca: caPath } : {}) } },
  };
  if (!sameValue(parseToml(file, next), expected)) {
    throw new NodeConfigRefused(file, `configure-node cannot add its block without changing what the file says; add this by hand:\n${block}`);
  }
  const changes: Change[] = [];
  if (!dirExists) changes.push({ kind: "mkdir", path: regDir });
  changes.push(...planCa(caPath, t.caPem));
  if (next !== existing) changes.push({ kind: "write", path: file, content: next });
  return changes;
}

function firstTable(text: string): number {
  const m = /^[ \t]*\[/m.exec(text);
  return m ? m.index : text.length;
}

/** The CA copy: written when given, removed when configure-node wrote one and none is given now. */
export function planCa(path: string, pem: string | null): Change[] {
  const current = readIfFile(path);
  if (current !== null && !current.startsWith(CA_MARK)) {
    throw new NodeConfigRefused(path, "exists and configure-node did not write it; move it away");
  }
  if (pem === null) return current === null ? [] : [{ kind: "delete", path }];
  const content = CA_MARK + pem;
  return current === content ? [] : [{ kind: "write", path, content }];
}

/** The changes that take configure-node's block (and what it created) out of `<dir>/<registry>`. */
export function planRemoveHosts(dir: string, registry: string): Change[] {
  const regDir = join(dir, registry);
  const file = join(regDir, "hosts.toml");
  const existing = readIfFile(file);
  const found = existing === null ? null : findBlock(file, existing);
  if (!found) return [];
  const changes: Change[] = planCa(join(regDir, CA_NAME), null);
  const gone = found.created.file && found.rest === "";
  changes.push(gone ? { kind: "delete", path: file } : { kind: "write", path: file, content: found.rest });
  if (gone && found.created.directory) {
    const left = readdirSync(regDir).filter((f) => f !== "hosts.toml" && !changes.some((c) => c.path === join(regDir, f)));
    if (left.length === 0) changes.push({ kind: "rmdir", path: regDir });
  }
  return changes;
}

/** The registries whose hosts.toml holds a configure-node block. */
export function configuredRegistries(dir: string): string[] {
  if (!isDir(dir)) return [];
  return readdirSync(dir).filter((name) => {
    const file = join(dir, name, "hosts.toml");
    try {
      if (!lstatSync(join(dir, name)).isDirectory()) return false;
      return findBlock(file, readIfFile(file) ?? "") !== null;
    } catch (err) {
      if (err instanceof NodeConfigRefused) throw err;
      return false;
    }
  }).sort();
}
