// What `serve` says when it starts: one banner with everything an operator checks first (never a
// secret), and, on a first run without a config file, how to point each client at this cache.
import pkg from "../../package.json" with { type: "json" };
import type { Config } from "../config/schema.ts";

function authKind(r: Config["registries"][number]): string {
  const parts = [r.auth ? "basic credentials" : r.credentialHelper ? `credential helper ${r.credentialHelper}` : "anonymous"];
  if (r.tls?.cert) parts.push("client certificate");
  if (r.tls?.ca) parts.push("custom CA");
  if (r.tls?.insecureSkipVerify) parts.push("TLS NOT VERIFIED");
  return parts.join(", ");
}

function every(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`;
}

const POLICY: Record<Config["upstreams"], string> = {
  public: "public (any a client names on public addresses; internal ones only when listed)",
  listed: "listed only",
  any: "ANY host a client names, internal ones included",
};

/** The start-up banner: version, store, address, TLS, auth, upstream policy, each upstream. */
export function banner(cfg: Config, port: number, extras: { metricsPort?: number; healthPort?: number }): string[] {
  const t = cfg.serverTlsConfig;
  const lines = [
    `ociregistry ${pkg.version} (bun ${Bun.version}) serving ${cfg.imagePath} on port ${port} (address ${cfg.host})`,
    `  TLS: ${t ? (t.clientAuth === "verify" ? "on, client certificates required" : "on") : "off (plain HTTP)"}; ` +
      `client auth: ${cfg.users.length ? `basic, ${cfg.users.length} user(s)` : t?.clientAuth === "verify" ? "client certificates" : "none"}; ` +
      `admin API: ${cfg.adminToken ? "on (/api/v1/, bearer token)" : "off"}`,
    `  upstreams: ${POLICY[cfg.upstreams]}; default namespace ${cfg.defaultNs}` +
      `${cfg.airGapped ? "; AIR-GAPPED (no upstream is contacted)" : ""}`,
    `  metrics: ${cfg.metrics === false ? "off" : extras.metricsPort !== undefined ? `/metrics on port ${extras.metricsPort}` : "/metrics"}; ` +
      `health: /healthz, /readyz${extras.healthPort !== undefined ? ` (also on port ${extras.healthPort})` : ""}`,
  ];
  if (cfg.upstreams === "any") {
    lines.push("  WARNING: upstreams: any lets every client make this cache contact any host, internal services included " +
      "(loopback, private networks, cloud metadata); use the default `public` and list internal registries under registries");
  }
  if (cfg.archives) lines.push(`  archives: ${cfg.archives.path}, consulted first, rescanned every ${every(cfg.archives.rescanMs)}`);
  for (const r of cfg.registries) {
    const via = r.endpoints?.length ? `, via ${r.endpoints.map((e) => e.url).join(" then ")}${r.originFallback ? " then the origin" : " only"}` : "";
    lines.push(`  upstream ${r.name}: ${r.scheme}, ${authKind(r)}${r.tokenHosts?.length ? `, token hosts ${r.tokenHosts.join(", ")}` : ""}${via}`);
  }
  return lines;
}

/** How to point containerd, Docker and Podman/CRI-O at this cache, with its real address. */
export function clientHints(host: string, port: number, tls: boolean): string {
  const addr = `${host === "0.0.0.0" || host === "::" ? "<this host's address>" : host}:${port}`;
  const scheme = tls ? "https" : "http";
  return `No config file given: serving with the defaults. To use this cache:
  containerd (/etc/containerd/certs.d/_default/hosts.toml mirrors every registry; or one directory per registry, e.g. docker.io/hosts.toml):
    [host."${scheme}://${addr}"]
      capabilities = ["pull", "resolve"]
  Docker (/etc/docker/daemon.json; Docker Hub images only):
    { "registry-mirrors": ["${scheme}://${addr}"]${tls ? "" : `, "insecure-registries": ["${addr}"]`} }
  Podman / CRI-O (/etc/containers/registries.conf):
    [[registry]]
    prefix = "docker.io"
    location = "docker.io"
    [[registry.mirror]]
    location = "${addr}/docker.io"${tls ? "" : "\n    insecure = true"}
  Or pull in-path: skopeo inspect --tls-verify=false docker://${addr}/registry.k8s.io/pause:3.9`;
}
