// Renders charts/ociregistry with the real helm and parses the result into Kubernetes objects,
// so tests check fields, not text.
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { requireTool, run } from "./procs.ts";

export const CHART = join(import.meta.dir, "../../charts/ociregistry");

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

export interface Probe {
  httpGet?: { path: string; port: string | number; scheme: string };
  tcpSocket?: { port: string | number };
}

export interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string };
  hostPath?: { path: string; type?: string };
  nfs?: { server: string; path: string; readOnly?: boolean };
  emptyDir?: { sizeLimit?: string };
  configMap?: { name: string };
  secret?: { secretName: string };
}

export interface PodSpec {
  hostNetwork?: boolean;
  dnsPolicy?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: Record<string, unknown>;
  initContainers?: Container[];
  containers: Container[];
  volumes: Volume[];
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  spec?: {
    type?: string;
    externalTrafficPolicy?: string;
    selector?: { matchLabels?: Record<string, string> } & Record<string, unknown>;
    ports?: { name: string; port: number; targetPort: string | number; nodePort?: number }[];
    strategy?: { type: string };
    template?: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
    endpoints?: { port: string; path: string; interval?: string; scheme?: string }[];
    resources?: { requests: { storage: string } };
  };
}

/** `helm template` with extra arguments (`-f FILE`, `--set k=v`); throws with helm's message on failure. */
export async function helmTemplate(args: string[] = []): Promise<K8sObject[]> {
  requireTool("helm");
  const r = await run(["helm", "template", "cache", CHART, "--namespace", "registry", ...args]);
  const docs = parseAllDocuments(r.stdout);
  for (const d of docs) if (d.errors.length) throw new Error(`helm rendered invalid YAML: ${d.errors[0]!.message}`);
  return docs.map((d) => d.toJS() as K8sObject | null).filter((o): o is K8sObject => o !== null);
}

/** `helm template` that is expected to fail; returns helm's error output. */
export async function helmTemplateError(args: string[]): Promise<string> {
  const r = await run(["helm", "template", "cache", CHART, ...args], { allowFail: true });
  if (r.code === 0) throw new Error(`helm template ${args.join(" ")} succeeded`);
  return r.stderr;
}

export function only(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ""}, found ${found.length}`);
  return found[0]!;
}

export function podSpec(objects: K8sObject[]): PodSpec {
  // The cache's own workload, not the node configurator's DaemonSet.
  const workloads = objects.filter((o) => (o.kind === "Deployment" || o.kind === "DaemonSet") && o.metadata.labels?.["app.kubernetes.io/component"] !== "node-config");
  if (workloads.length !== 1) throw new Error(`expected one workload, found ${workloads.length}`);
  return workloads[0]!.spec!.template!.spec;
}

export function mainContainer(objects: K8sObject[]): Container {
  const c = podSpec(objects).containers.find((x) => x.name === "ociregistry");
  if (!c) throw new Error("no ociregistry container");
  return c;
}

/** The value following `flag` in the container's arguments. */
export function argValue(c: Container, flag: string): string | undefined {
  const i = (c.args ?? []).indexOf(flag);
  return i < 0 ? undefined : c.args![i + 1];
}

/** The volume mounted at `path` in the main container. */
export function volumeAt(objects: K8sObject[], path: string): Volume {
  const mount = mainContainer(objects).volumeMounts?.find((m) => m.mountPath === path);
  if (!mount) throw new Error(`nothing is mounted at ${path}`);
  return podSpec(objects).volumes.find((v) => v.name === mount.name)!;
}
