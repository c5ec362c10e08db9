// charts/ociregistry with its defaults, each persistence type, the DaemonSet preset and the
// archives preset: helm lint, then helm template parsed into objects.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { resolveConfig } from "../../src/config/resolve.ts";
import { CHART, argValue, helmTemplate, helmTemplateError, mainContainer, only, podSpec, volumeAt, type K8sObject } from "../helpers/helm.ts";
import { run } from "../helpers/procs.ts";

const STORE = "/var/lib/ociregistry";
let defaults: K8sObject[];
let work: string;

beforeAll(async () => {
  defaults = await helmTemplate();
  work = mkdtempSync(join(tmpdir(), "ocireg-helm-"));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

// The ServiceAccount and PodDisruptionBudget come with every render (test/e2e/helm-cluster.test.ts checks them).
const kinds = (objects: K8sObject[]) => objects.map((o) => o.kind).filter((k) => k !== "ServiceAccount" && k !== "PodDisruptionBudget").sort();

describe("helm lint", () => {
  for (const [label, args] of [
    ["the defaults", []],
    ["every option on", ["-f", join(CHART, "ci/all-on-values.yaml")]],
    ["the DaemonSet preset", ["-f", join(CHART, "values-daemonset.yaml")]],
    ["the archives preset", ["-f", join(CHART, "values-archives.yaml")]],
  ] as const) {
    test(`passes --strict with ${label}`, async () => {
      const r = await run(["helm", "lint", "--strict", CHART, ...args], { allowFail: true });
      expect([r.code, r.stderr]).toEqual([0, ""]);
    });
  }
});

describe("the defaults", () => {
  test("render a Deployment, a NodePort Service on 31080, a claim and the config, nothing else", () => {
    expect(kinds(defaults)).toEqual(["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service"]);
    const svc = only(defaults, "Service");
    expect(svc.spec!.type).toBe("NodePort");
    expect(svc.spec!.ports).toEqual([{ name: "http", port: 8080, targetPort: "http", nodePort: 31080 }]);
    const podLabels = only(defaults, "Deployment").spec!.template!.metadata.labels;
    for (const [k, v] of Object.entries(svc.spec!.selector!)) expect(podLabels[k]).toBe(v as string);
  });

  test("run the image tagged with the chart's appVersion, which is the package version", () => {
    const chart = parseYaml(readFileSync(join(CHART, "Chart.yaml"), "utf8")) as { appVersion: string };
    const pkg = JSON.parse(readFileSync(join(CHART, "../../package.json"), "utf8")) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
    expect(mainContainer(defaults).image).toBe(`ociregistry:${pkg.version}`);
  });

  test("pass the ConfigMap's config.yaml with --config-file", () => {
    const file = argValue(mainContainer(defaults), "--config-file")!;
    const dir = file.slice(0, file.lastIndexOf("/"));
    const cm = only(defaults, "ConfigMap");
    expect(volumeAt(defaults, dir).configMap?.name).toBe(cm.metadata.name);
    expect(Object.keys(cm.data!)).toEqual([file.slice(dir.length + 1)]);
  });

  test("write a config, port and store path this binary accepts", () => {
    const c = mainContainer(defaults);
    const configFile = join(work, "config.yaml");
    writeFileSync(configFile, only(defaults, "ConfigMap").data!["config.yaml"]!);
    const cfg = resolveConfig({ configFile, imagePath: argValue(c, "--image-path"), port: argValue(c, "--port") }, {});
    expect(cfg.logLevel).toBe("info");
    expect(cfg.port).toBe(8080);
    expect(cfg.imagePath).toBe(STORE);
  });

  test("probe GET /healthz for liveness and GET /readyz for readiness on the serve port", () => {
    const c = mainContainer(defaults);
    const http = c.ports!.find((p) => p.name === "http")!;
    expect(http.containerPort).toBe(Number(argValue(c, "--port")));
    expect(c.livenessProbe).toMatchObject({ httpGet: { path: "/healthz", port: "http", scheme: "HTTP" } });
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: "/readyz", port: "http", scheme: "HTTP" } });
  });

  test("run as 65532 with a read-only root, no privilege escalation, no capabilities and a writable /tmp", () => {
    const pod = podSpec(defaults);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532 });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.initContainers).toBeUndefined();
    const sc = mainContainer(defaults).securityContext!;
    expect(sc).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(sc.capabilities).toEqual({ drop: ["ALL"] });
    expect(volumeAt(defaults, "/tmp").emptyDir).toBeDefined();
  });

  test("request 100m CPU and 64Mi memory with a 256Mi limit", () => {
    expect(mainContainer(defaults).resources).toEqual({ requests: { cpu: "100m", memory: "64Mi" }, limits: { memory: "256Mi" } });
  });

  test("keep the store on the claim they create and replace the pod all at once", () => {
    expect(argValue(mainContainer(defaults), "--image-path")).toBe(STORE);
    const pvc = only(defaults, "PersistentVolumeClaim");
    expect(volumeAt(defaults, STORE).persistentVolumeClaim).toEqual({ claimName: pvc.metadata.name });
    expect(pvc.spec!.resources!.requests.storage).toBe("20Gi");
    // A ReadWriteOnce claim cannot be mounted by an old and a new pod on different nodes.
    expect(only(defaults, "Deployment").spec!.strategy).toEqual({ type: "Recreate" });
  });
});

describe("persistence types", () => {
  test("emptyDir keeps the store in the pod and creates no claim", async () => {
    const objects = await helmTemplate(["--set", "persistence.type=emptyDir"]);
    expect(kinds(objects)).toEqual(["ConfigMap", "Deployment", "Service"]);
    expect(volumeAt(objects, STORE).emptyDir).toBeDefined();
    expect(only(objects, "Deployment").spec!.strategy).toBeUndefined();
  });

  test("hostPath keeps the store in a node directory", async () => {
    const objects = await helmTemplate(["--set", "persistence.type=hostPath", "--set", "persistence.hostPath.path=/srv/cache"]);
    expect(kinds(objects)).toEqual(["ConfigMap", "Deployment", "Service"]);
    expect(volumeAt(objects, STORE).hostPath).toEqual({ path: "/srv/cache", type: "DirectoryOrCreate" });
  });

  test("an existing claim is mounted and none is created", async () => {
    const objects = await helmTemplate(["--set", "persistence.pvc.existingClaim=shared-cache"]);
    expect(kinds(objects)).not.toContain("PersistentVolumeClaim");
    expect(volumeAt(objects, STORE).persistentVolumeClaim).toEqual({ claimName: "shared-cache" });
  });
});

describe("the DaemonSet preset (values-daemonset.yaml)", () => {
  let objects: K8sObject[];
  beforeAll(async () => {
    objects = await helmTemplate(["-f", join(CHART, "values-daemonset.yaml")]);
  });

  test("runs a DaemonSet on the node's /var/lib/ociregistry, with no claim", () => {
    expect(kinds(objects)).toEqual(["ConfigMap", "DaemonSet", "Service"]);
    expect(volumeAt(objects, STORE).hostPath).toEqual({ path: STORE, type: "DirectoryOrCreate" });
  });

  test("gives the node directory to 65532 from an init container holding only CAP_CHOWN", () => {
    const init = podSpec(objects).initContainers!;
    expect(init).toHaveLength(1);
    expect(init[0]!.command).toEqual(["chown", "65532:65532", STORE]);
    expect(init[0]!.securityContext).toMatchObject({ runAsUser: 0, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"], add: ["CHOWN"] } });
    expect(init[0]!.volumeMounts).toEqual([{ name: "store", mountPath: STORE }]);
  });

  test("keeps NodePort traffic on the node that received it", () => {
    const svc = only(objects, "Service");
    expect(svc.spec!.externalTrafficPolicy).toBe("Local");
    expect(svc.spec!.ports![0]!.nodePort).toBe(31080);
  });

  test("can listen on the node's network", async () => {
    const host = await helmTemplate(["-f", join(CHART, "values-daemonset.yaml"), "--set", "hostNetwork=true"]);
    expect(podSpec(host)).toMatchObject({ hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" });
    expect(podSpec(objects).hostNetwork).toBeUndefined();
  });
});

describe("the archives preset (values-archives.yaml)", () => {
  const ARCHIVES = "/var/lib/ociregistry-archives";
  let objects: K8sObject[];
  beforeAll(async () => {
    objects = await helmTemplate(["-f", join(CHART, "values-archives.yaml")]);
  });

  test("runs a DaemonSet with the node's archive directory mounted read-only beside its own store", () => {
    expect(kinds(objects)).toEqual(["ConfigMap", "DaemonSet", "Service"]);
    expect(volumeAt(objects, ARCHIVES).hostPath).toEqual({ path: "/srv/oci-archives", type: "Directory" });
    expect(mainContainer(objects).volumeMounts!.find((m) => m.mountPath === ARCHIVES)!.readOnly).toBe(true);
    expect(volumeAt(objects, STORE).hostPath).toEqual({ path: STORE, type: "DirectoryOrCreate" });
    expect(only(objects, "Service").spec!.externalTrafficPolicy).toBe("Local");
  });

  test("points the config's archives.path at the mount, and the binary accepts that config", () => {
    const configFile = join(work, "archives-config.yaml");
    writeFileSync(configFile, only(objects, "ConfigMap").data!["config.yaml"]!);
    expect(resolveConfig({ configFile }, {}).archives).toEqual({ path: ARCHIVES, rescanMs: 600_000 });
  });

  test("an NFS export instead of the node directory, mounted read-only", async () => {
    const nfs = await helmTemplate(["-f", join(CHART, "values-archives.yaml"), "--set", "archives.volume.nfs.server=nfs.internal",
      "--set", "archives.volume.nfs.path=/exports/oci", "--set", "archives.mountPath=/archives", "--set", "archives.rescan=1m"]);
    expect(volumeAt(nfs, "/archives")).toEqual({ name: "archives", nfs: { server: "nfs.internal", path: "/exports/oci", readOnly: true } });
    expect(parseYaml(only(nfs, "ConfigMap").data!["config.yaml"]!).archives).toEqual({ path: "/archives", rescan: "1m" });
  });

  test("the defaults mount no archives and configure none", () => {
    expect(podSpec(defaults).volumes.map((v) => v.name)).not.toContain("archives");
    expect(parseYaml(only(defaults, "ConfigMap").data!["config.yaml"]!).archives).toBeUndefined();
  });
});

describe("values that cannot work are refused, naming the value", () => {
  for (const [sets, message] of [
    [["kind=DaemonSet"], "kind DaemonSet needs persistence.type hostPath or emptyDir"],
    [["kind=StatefulSet"], 'kind must be one of the following: "Deployment", "DaemonSet"'],
    [["persistence.type=nfs"], 'persistence.type must be one of the following: "pvc", "hostPath", "emptyDir"'],
    [["serverTls.enabled=true"], "serverTls.enabled needs serverTls.secretName"],
    [["archives.enabled=true"], "archives.enabled needs archives.volume.hostPath.path or archives.volume.nfs.server and .path"],
    [["archives.enabled=true", "archives.volume.nfs.server=nfs.internal"], "archives.volume.nfs.server needs archives.volume.nfs.path"],
  ] as const) {
    test(`--set ${sets.join(" ")}`, async () => {
      expect(await helmTemplateError(sets.flatMap((s) => ["--set", s]))).toContain(message);
    });
  }
});
