// charts/ociregistry with every option on (ci/all-on-values.yaml) and with plain server TLS:
// generated config sections, Secret references, metrics, ServiceMonitor and Grafana dashboard.
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { CHART, argValue, helmTemplate, mainContainer, only, volumeAt, type Container, type K8sObject } from "../helpers/helm.ts";

interface RenderedConfig {
  logLevel?: string;
  upstreams?: string;
  metrics?: number;
  admin?: { tokenFromEnv?: string };
  registries?: { name: string; auth?: { user: string; passwordFromEnv?: string } }[];
  serverTlsConfig?: { cert: string; key: string; ca?: string; clientAuth: string };
}

/** Every metric the binary exports; the dashboard must use each and no other. */
const METRICS = [
  "ociregistry_http_requests_total", "ociregistry_http_request_duration_seconds_bucket",
  "ociregistry_cache_hits_total", "ociregistry_cache_misses_total", "ociregistry_served_bytes_total",
  "ociregistry_upstream_requests_total", "ociregistry_upstream_errors_total",
  "ociregistry_store_bytes", "ociregistry_downloads_in_flight",
  "ociregistry_store_max_bytes", "ociregistry_store_free_bytes", "ociregistry_store_full", "ociregistry_evictions_total",
  "ociregistry_upstream_circuit_open", "ociregistry_upstream_ratelimit_remaining", "ociregistry_upstream_request_duration_seconds_bucket",
  "ociregistry_build_info",
];

function configOf(objects: K8sObject[]): RenderedConfig {
  const cm = only(objects, "ConfigMap", "cache-ociregistry");
  return parseYaml(cm.data!["config.yaml"]!) as RenderedConfig;
}

function secretEnv(c: Container, name: string) {
  return c.env?.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
}

describe("every option on", () => {
  let objects: K8sObject[];
  let config: RenderedConfig;
  let c: Container;
  beforeAll(async () => {
    objects = await helmTemplate(["-f", join(CHART, "ci/all-on-values.yaml")]);
    config = configOf(objects);
    c = mainContainer(objects);
  });

  test("renders the workload, Service, claim, config, ServiceMonitor, alerts and dashboard", () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(
      ["ConfigMap", "ConfigMap", "Deployment", "PersistentVolumeClaim", "PodDisruptionBudget", "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"]);
  });

  test("keeps the config value and adds the generated sections", () => {
    expect(config.logLevel).toBe("debug");
    expect(config.upstreams).toBe("listed");
    expect(config.registries).toEqual([{ name: "harbor.corp.example", auth: { user: "robot$cache", passwordFromEnv: "HARBOR_PASSWORD" } }]);
    expect(config.metrics).toBe(9090);
  });

  test("feeds upstream passwords from existing Secrets to the env vars the config names", () => {
    const envName = config.registries![0]!.auth!.passwordFromEnv!;
    expect(secretEnv(c, envName)).toEqual({ name: "harbor-robot", key: "password" });
  });

  test("feeds the admin token from admin.existingSecret to the env var admin.tokenFromEnv names", () => {
    expect(secretEnv(c, config.admin!.tokenFromEnv!)).toEqual({ name: "ociregistry-admin", key: "admin-token" });
  });

  test("mounts the TLS Secret where serverTlsConfig points, with the client CA for verify", () => {
    const tls = config.serverTlsConfig!;
    expect(tls.clientAuth).toBe("verify");
    const dir = tls.cert.slice(0, tls.cert.lastIndexOf("/"));
    expect(volumeAt(objects, dir).secret).toEqual({ secretName: "ociregistry-tls" });
    expect([tls.cert, tls.key, tls.ca]).toEqual([`${dir}/tls.crt`, `${dir}/tls.key`, `${dir}/ca.crt`]);
  });

  test("probes with TCP connects, as the kubelet has no client certificate for verify", () => {
    expect(c.livenessProbe).toEqual(expect.objectContaining({ tcpSocket: { port: "http" } }));
    expect(c.readinessProbe).toEqual(expect.objectContaining({ tcpSocket: { port: "http" } }));
    expect(c.livenessProbe!.httpGet).toBeUndefined();
  });

  test("exposes the metrics port on the container and the Service, and scrapes it", () => {
    expect(c.ports).toContainEqual({ name: "metrics", containerPort: 9090 });
    const svc = only(objects, "Service");
    expect(svc.spec!.ports).toContainEqual({ name: "metrics", port: 9090, targetPort: "metrics" });
    const sm = only(objects, "ServiceMonitor");
    expect(sm.metadata.labels!.release).toBe("prometheus");
    expect(sm.spec!.endpoints).toEqual([{ port: "metrics", path: "/metrics", interval: "15s" }]);
    for (const [k, v] of Object.entries(sm.spec!.selector!.matchLabels!)) expect(svc.metadata.labels![k]).toBe(v);
  });

  test("ships a Grafana dashboard whose panels use every exported metric and no other", () => {
    const cm = only(objects, "ConfigMap", "cache-ociregistry-dashboard");
    expect(cm.metadata.labels!.grafana_dashboard).toBe("1");
    const dashboard = JSON.parse(cm.data!["ociregistry.json"]!) as { panels: { title: string; targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    const used = new Set(exprs.flatMap((e) => e.match(/ociregistry_[a-z_]+/g) ?? []));
    expect([...used].sort()).toEqual([...METRICS].sort());
    expect(dashboard.panels.every((p) => p.title && p.targets.length > 0)).toBe(true);
  });

  test("appends extraArgs after the chart's own flags", () => {
    expect(argValue(c, "--revalidate-after")).toBe("10m");
    expect(argValue(c, "--port")).toBe("8080");
  });
});

describe("server TLS without client certificates", () => {
  let objects: K8sObject[];
  beforeAll(async () => {
    objects = await helmTemplate(["--set", "serverTls.enabled=true", "--set", "serverTls.secretName=cache-tls",
      "--set", "metrics.serviceMonitor.enabled=true"]);
  });

  test("probes /healthz and /readyz over HTTPS", () => {
    const c = mainContainer(objects);
    expect(c.livenessProbe!.httpGet).toEqual({ path: "/healthz", port: "http", scheme: "HTTPS" });
    expect(c.readinessProbe!.httpGet).toEqual({ path: "/readyz", port: "http", scheme: "HTTPS" });
  });

  test("configures no client CA and scrapes /metrics on the serve port over HTTPS", () => {
    const tls = configOf(objects).serverTlsConfig!;
    expect(tls.clientAuth).toBe("none");
    expect(tls.ca).toBeUndefined();
    expect(configOf(objects).metrics).toBeUndefined();
    expect(only(objects, "ServiceMonitor").spec!.endpoints![0]).toMatchObject({ port: "http", path: "/metrics", scheme: "https" });
    expect(only(objects, "Service").spec!.ports!.map((p) => p.name)).toEqual(["http"]);
  });

  test("leaves the dashboard out unless enabled", () => {
    expect(objects.filter((o) => o.kind === "ConfigMap").map((o) => o.metadata.name)).toEqual(["cache-ociregistry"]);
  });
});
