// charts/ociregistry as a cluster operator uses it: every values file in the chart lints, renders
// and validates against the Kubernetes schemas; the values schema and the templates refuse mistakes;
// the node configurator DaemonSet, ServiceAccount, disruption budget, Ingress, HTTPRoute, start-up
// probe, spreading of replicas and rolling updates on S3.
import { beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { CHART, helmTemplate, helmTemplateError, mainContainer, only, podSpec, type K8sObject, type PodSpec } from "../helpers/helm.ts";
import { validateObject } from "../helpers/k8s-schemas.ts";
import { run } from "../helpers/procs.ts";

const VALUES_FILES = [
  ...readdirSync(CHART).filter((f) => /^values.*\.yaml$/.test(f)),
  ...readdirSync(join(CHART, "ci")).map((f) => `ci/${f}`),
].sort();

type Rendered = K8sObject & { spec?: K8sObject["spec"] & Record<string, unknown> };
const nodeConfig = (objects: K8sObject[]) => only(objects, "DaemonSet", "cache-ociregistry-node-config") as Rendered;
const nodePod = (objects: K8sObject[]) => nodeConfig(objects).spec!.template!.spec as PodSpec & Record<string, unknown>;

describe("every values file in the chart", () => {
  test("includes the example set-ups", () => {
    expect(VALUES_FILES).toEqual(expect.arrayContaining(["values.yaml", "values-nodeport.yaml", "values-daemonset-hostport.yaml", "values-s3-replicas.yaml"]));
  });

  for (const file of VALUES_FILES) {
    test(`${file}: helm lint --strict passes and every object matches the Kubernetes schema`, async () => {
      const lint = await run(["helm", "lint", "--strict", CHART, "-f", join(CHART, file)], { allowFail: true });
      expect([lint.code, lint.stderr]).toEqual([0, ""]);
      const objects = await helmTemplate(["-f", join(CHART, file)]);
      expect(objects.length).toBeGreaterThan(3);
      for (const o of objects) validateObject(o);
    });
  }

  test("the validator does refuse an object the API server would refuse", async () => {
    const [deployment] = (await helmTemplate()).filter((o) => o.kind === "Deployment");
    (mainContainer([deployment!]).ports![0] as { containerPort: unknown }).containerPort = "eighty";
    expect(() => validateObject(deployment!)).toThrow("containerPort");
  });
});

describe("mistakes are refused, naming the value", () => {
  for (const [sets, message] of [
    [["persistance.type=emptyDir"], "Additional property persistance is not allowed"],
    [["persistence.type=emptydir"], "persistence.type must be one of the following"],
    [["replicas=3"], "replicas 3 cannot share one ReadWriteOnce claim"],
    [["replicas=3", "config.store=s3://bucket/", "config.s3.endpoint=https://s3.example"], "with S3 the claim only holds temporary files: persistence.type emptyDir"],
    [["replicas=three"], "replicas: Invalid type. Expected: integer"],
    [["config.logLevle=debug"], "Additional property logLevle is not allowed"],
    [["service.nodePort=99999"], "service.nodePort"],
    [["nodeConfig.enabled=true", "service.type=ClusterIP"], "nodeConfig.enabled needs a way for the nodes to reach the cache"],
    [["nodeConfig.enabled=true", "serverTls.enabled=true", "serverTls.secretName=t", "serverTls.clientAuth=verify"], "containerd on the nodes has no client certificate"],
    [["nodeConfig.registries=docker.io"], "nodeConfig.registries: Invalid type. Expected: array"],
    [["hostPort=5080"], "hostPort is for kind DaemonSet"],
    [["ingress.enabled=true"], "ingress.enabled needs ingress.host"],
    [["httpRoute.enabled=true"], "httpRoute.enabled needs httpRoute.parentRefs"],
  ] as const) {
    test(`--set ${sets.join(" ")}`, async () => {
      expect(await helmTemplateError(sets.flatMap((s) => ["--set", s]))).toContain(message);
    });
  }

  test("several replicas render with a ReadWriteMany claim or emptyDir", async () => {
    await helmTemplate(["--set", "replicas=3", "--set", "persistence.pvc.accessModes={ReadWriteMany}"]);
    await helmTemplate(["--set", "replicas=3", "--set", "persistence.type=emptyDir"]);
  });
});

describe("the node configurator (nodeConfig.enabled)", () => {
  let nodeport: K8sObject[];
  beforeAll(async () => {
    nodeport = await helmTemplate(["-f", join(CHART, "values-nodeport.yaml")]);
  });

  test("runs configure-node --keep-running for every registry against the node's NodePort", () => {
    const c = nodePod(nodeport).containers[0]!;
    expect(c.command).toEqual(["/usr/local/bin/ociregistry", "configure-node"]);
    expect(c.args).toEqual(["--mirror", "http://$(HOST_IP):31080", "--all", "--containerd-dir", "/etc/containerd/certs.d", "--keep-running"]);
    expect(c.env).toEqual([{ name: "HOST_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } } as never]);
  });

  test("mounts only the node's certs.d, at the same path, as root with no capability and no token", () => {
    const pod = nodePod(nodeport);
    const c = pod.containers[0]!;
    expect(pod.volumes.find((v) => v.name === "node-dir")!.hostPath).toEqual({ path: "/etc/containerd/certs.d", type: "DirectoryOrCreate" });
    expect(c.volumeMounts!.find((m) => m.name === "node-dir")!.mountPath).toBe("/etc/containerd/certs.d");
    expect(pod.volumes.filter((v) => v.hostPath).length).toBe(1);
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    expect(c.securityContext!.capabilities!.add).toBeUndefined();
    expect(c.securityContext!.privileged).toBeUndefined();
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.hostNetwork).toBeUndefined();
  });

  test("tolerates every taint, and is never selected by the cache's Service or workload", () => {
    expect(nodePod(nodeport).tolerations).toEqual([{ operator: "Exists" }]);
    const labels = nodeConfig(nodeport).spec!.template!.metadata.labels;
    const svcSelector = only(nodeport, "Service").spec!.selector as Record<string, string>;
    expect(Object.entries(svcSelector).every(([k, v]) => labels[k] === v)).toBe(false);
  });

  test("re-runs when its values change: the pod template's checksum follows them", async () => {
    const listed = await helmTemplate(["-f", join(CHART, "values-nodeport.yaml"), "--set", "nodeConfig.registries={docker.io,quay.io}"]);
    const sum = (o: K8sObject[]) => nodeConfig(o).spec!.template!.metadata.annotations!["checksum/node-config"];
    expect(sum(listed)).not.toBe(sum(nodeport));
    expect(nodePod(listed).containers[0]!.args).toContain("docker.io,quay.io");
  });

  test("uses the hostPort on a DaemonSet cache, and https with the CA from a Secret", async () => {
    const hostport = await helmTemplate(["-f", join(CHART, "values-daemonset-hostport.yaml")]);
    expect(nodePod(hostport).containers[0]!.args!.slice(0, 4)).toEqual(["--mirror", "http://$(HOST_IP):5080", "--registries", "docker.io,registry.k8s.io,quay.io,ghcr.io"]);
    expect(mainContainer(hostport).ports![0]).toMatchObject({ name: "http", containerPort: 8080, hostPort: 5080 } as never);
    const tls = await helmTemplate(["-f", join(CHART, "ci/cluster-values.yaml")]);
    const c = nodePod(tls).containers[0]!;
    expect(c.args).toContain("https://$(HOST_IP):31080");
    const ca = c.args![c.args!.indexOf("--ca") + 1]!;
    const mount = c.volumeMounts!.find((m) => ca.startsWith(`${m.mountPath}/`))!;
    expect(nodePod(tls).volumes.find((v) => v.name === mount.name)!.secret).toEqual({ secretName: "ociregistry-tls" });
  });

  test("k3s: writes registries.yaml in the node's /etc/rancher/k3s", async () => {
    const k3s = await helmTemplate(["-f", join(CHART, "values-nodeport.yaml"), "--set", "nodeConfig.k3sFile=/etc/rancher/k3s/registries.yaml"]);
    expect(nodePod(k3s).containers[0]!.args).toEqual(expect.arrayContaining(["--k3s", "/etc/rancher/k3s/registries.yaml"]));
    expect(nodePod(k3s).volumes.find((v) => v.name === "node-dir")!.hostPath!.path).toBe("/etc/rancher/k3s");
  });
});

describe("what a cluster operator looks for", () => {
  let defaults: K8sObject[];
  let s3: K8sObject[];
  beforeAll(async () => {
    defaults = await helmTemplate();
    s3 = await helmTemplate(["-f", join(CHART, "values-s3-replicas.yaml")]);
  });

  test("a ServiceAccount whose token no pod mounts", () => {
    const sa = only(defaults, "ServiceAccount") as K8sObject & { automountServiceAccountToken?: boolean };
    expect(sa.automountServiceAccountToken).toBe(false);
    expect(podSpec(defaults)).toMatchObject({ serviceAccountName: sa.metadata.name, automountServiceAccountToken: false } as never);
  });

  test("a PodDisruptionBudget over the cache's pods that still lets one replica be drained", () => {
    const pdb = only(defaults, "PodDisruptionBudget") as Rendered;
    expect(pdb.spec!.maxUnavailable).toBe(1);
    const labels = only(defaults, "Deployment").spec!.template!.metadata.labels;
    for (const [k, v] of Object.entries(pdb.spec!.selector!.matchLabels!)) expect(labels[k]).toBe(v);
  });

  test("a start-up probe on /healthz before liveness counts", () => {
    expect(mainContainer(defaults)).toMatchObject({ startupProbe: { httpGet: { path: "/healthz", port: "http" }, failureThreshold: 60, periodSeconds: 2 } } as never);
  });

  test("S3 replicas: rolling updates one pod at a time, spread over nodes and zones, no claim", () => {
    const d = only(s3, "Deployment") as Rendered;
    expect(d.spec!).toMatchObject({ replicas: 3, strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } } } as never);
    const spread = (podSpec(s3) as PodSpec & { topologySpreadConstraints?: Array<{ topologyKey: string }> }).topologySpreadConstraints;
    expect(spread?.map((c) => c.topologyKey)).toEqual(["kubernetes.io/hostname", "topology.kubernetes.io/zone"]);
    expect(s3.some((o) => o.kind === "PersistentVolumeClaim")).toBe(false);
    expect(only(defaults, "Deployment").spec!.strategy).toEqual({ type: "Recreate" });
  });

  test("replicas without spread constraints prefer different nodes", async () => {
    const spread = await helmTemplate(["--set", "replicas=2", "--set", "persistence.type=emptyDir"]);
    const anti = (podSpec(spread) as PodSpec & { affinity?: { podAntiAffinity?: { preferredDuringSchedulingIgnoredDuringExecution: { podAffinityTerm: { topologyKey: string } }[] } } }).affinity;
    expect(anti!.podAntiAffinity!.preferredDuringSchedulingIgnoredDuringExecution[0]!.podAffinityTerm.topologyKey).toBe("kubernetes.io/hostname");
    expect((podSpec(defaults) as PodSpec & { affinity?: unknown }).affinity).toBeUndefined();
  });

  test("an Ingress and an HTTPRoute to the Service's http port", async () => {
    const objects = await helmTemplate(["-f", join(CHART, "ci/cluster-values.yaml")]);
    const ing = only(objects, "Ingress") as Rendered;
    expect(ing.spec!).toMatchObject({ ingressClassName: "nginx", tls: [{ hosts: ["cache.corp.example"], secretName: "cache-ingress-tls" }] } as never);
    const route = only(objects, "HTTPRoute") as Rendered;
    expect(route.spec!).toMatchObject({ parentRefs: [{ name: "shared-gateway", namespace: "gateway-system" }], rules: [{ backendRefs: [{ name: "cache-ociregistry", port: 8080 }] }] } as never);
  });
});
