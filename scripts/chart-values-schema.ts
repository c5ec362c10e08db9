// The JSON Schema of the chart's own values (charts/ociregistry/values.yaml); scripts/config-table.ts
// adds the config file's schema under `config` and writes values.schema.json. Every object is
// closed (additionalProperties: false), so a misspelt key fails `helm template` / `helm install`.
type Schema = Record<string, unknown>;

const str: Schema = { type: "string" };
const bool: Schema = { type: "boolean" };
const int = (minimum = 0, maximum?: number): Schema => ({ type: "integer", minimum, ...(maximum ? { maximum } : {}) });
const port = int(1, 65535);
const strMap: Schema = { type: "object", additionalProperties: { type: "string" } };
/** Kubernetes objects passed through as they are (the API server checks them). */
const k8s = (description: string): Schema => ({ type: "object", description });
const k8sList = (description: string): Schema => ({ type: "array", items: { type: "object" }, description });
const obj = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({ type: "object", additionalProperties: false, properties, ...extra });
const oneOf = (...values: string[]): Schema => ({ type: "string", enum: values });
const ratio: Schema = { oneOf: [{ type: "number", exclusiveMinimum: 0, maximum: 1 }, { type: "string", pattern: "^(0?\\.[0-9]*[1-9][0-9]*|1(\\.0*)?)$" }] };

export const chartValuesProperties: Record<string, Schema> = {
  global: { type: "object", description: "Helm's values shared with subcharts" },
  image: obj({ repository: { type: "string", minLength: 1 }, tag: str, pullPolicy: oneOf("Always", "IfNotPresent", "Never") }),
  imagePullSecrets: k8sList("LocalObjectReferences ({ name })"),
  nameOverride: str,
  fullnameOverride: str,
  kind: oneOf("Deployment", "DaemonSet"),
  replicas: int(0),
  strategy: k8s("A Deployment strategy"),
  port,
  hostNetwork: bool,
  hostPort: { oneOf: [{ type: "null" }, port] },
  service: obj({
    type: oneOf("ClusterIP", "NodePort", "LoadBalancer"),
    port,
    nodePort: { oneOf: [{ type: "null" }, int(1, 65535)] },
    externalTrafficPolicy: { type: "string", enum: ["", "Cluster", "Local"] },
    annotations: strMap,
  }),
  ingress: obj({ enabled: bool, className: str, annotations: strMap, host: str, tlsSecretName: str }),
  httpRoute: obj({ enabled: bool, parentRefs: k8sList("Gateway API ParentReferences"), hostnames: { type: "array", items: str } }),
  serviceAccount: obj({ create: bool, name: str, annotations: strMap }),
  podDisruptionBudget: obj({ enabled: bool, maxUnavailable: { oneOf: [int(0), { type: "string", pattern: "^[0-9]+%$" }] } }),
  startupProbe: obj({ periodSeconds: int(1), failureThreshold: int(1) }),
  topologySpreadConstraints: k8sList("TopologySpreadConstraints"),
  nodeConfig: obj({
    enabled: bool,
    mirror: { type: "string", pattern: "^(https?://.+)?$" },
    registries: { type: "array", items: { type: "string", minLength: 1 } },
    containerdDir: { type: "string", pattern: "^/" },
    k3sFile: { type: "string", pattern: "^(/.+)?$" },
    ca: obj({ secretName: str, key: { type: "string", minLength: 1 } }),
    resources: k8s("ResourceRequirements"),
    tolerations: k8sList("Tolerations"),
    nodeSelector: strMap,
    priorityClassName: str,
  }),
  persistence: obj({
    type: oneOf("pvc", "hostPath", "emptyDir"),
    pvc: obj({
      existingClaim: str, size: str, storageClassName: str,
      accessModes: { type: "array", minItems: 1, items: oneOf("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod") },
    }),
    hostPath: obj({ path: { type: "string", pattern: "^/" }, chown: obj({ enabled: bool, image: str }) }),
    emptyDir: obj({ sizeLimit: str }),
  }),
  archives: obj({
    enabled: bool, mountPath: { type: "string", pattern: "^/" }, rescan: str,
    volume: obj({ hostPath: obj({ path: str }), nfs: obj({ server: str, path: str }) }),
  }),
  upstreamSecrets: {
    type: "array",
    items: obj({ env: { type: "string", pattern: "^[A-Za-z_][A-Za-z0-9_]*$" }, secretName: str, secretKey: str }, { required: ["env", "secretName", "secretKey"] }),
  },
  admin: obj({ existingSecret: str, secretKey: str }),
  replicaLink: obj({ existingSecret: str, secretKey: str }),
  serverTls: obj({ enabled: bool, secretName: str, clientAuth: oneOf("none", "verify") }),
  metrics: obj({
    port: { oneOf: [{ type: "null" }, port] },
    serviceMonitor: obj({ enabled: bool, interval: str, labels: strMap }),
  }),
  prometheusRule: obj({
    enabled: bool, labels: strMap, alertLabels: strMap, upstreamFailingFor: str,
    // `--set x=0.05` arrives as a string: both spellings of a ratio in (0, 1].
    storeRatio: ratio,
    errorRatio: ratio,
  }),
  grafana: obj({ dashboard: obj({ enabled: bool, labels: strMap }) }),
  resources: k8s("ResourceRequirements"),
  podSecurityContext: k8s("PodSecurityContext"),
  securityContext: k8s("SecurityContext"),
  tmp: obj({ sizeLimit: str }),
  shutdownDelaySeconds: int(0),
  drainTimeoutSeconds: int(0),
  terminationGracePeriodSeconds: { oneOf: [{ type: "null" }, int(0)] },
  extraArgs: { type: "array", items: str },
  extraEnv: k8sList("EnvVars"),
  podAnnotations: strMap,
  podLabels: strMap,
  nodeSelector: strMap,
  tolerations: k8sList("Tolerations"),
  affinity: k8s("Affinity"),
  priorityClassName: str,
};
