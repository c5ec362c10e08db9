// Validates rendered objects against the Kubernetes OpenAPI schemas with kubernetes-models (and its
// Gateway API and prometheus-operator packages for the CRDs the chart renders): a maintained
// npm package generated from the upstream schemas, validating in-process with no cluster and no
// downloaded schema files, which kubeconform and friends would need.
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Job } from "kubernetes-models/batch/v1/Job";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import type { K8sObject } from "./helm.ts";

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap, "v1/PersistentVolumeClaim": PersistentVolumeClaim, "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount, "apps/v1/DaemonSet": DaemonSet, "apps/v1/Deployment": Deployment,
  "batch/v1/Job": Job, "networking.k8s.io/v1/Ingress": Ingress, "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "gateway.networking.k8s.io/v1/HTTPRoute": HTTPRoute,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule, "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

/** Throws naming the object and the schema's complaint; an object of a kind with no schema here is an error too. */
export function validateObject(o: K8sObject) {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!Model) throw new Error(`${o.apiVersion} ${o.kind} ${o.metadata?.name}: no schema for this kind in test/helpers/k8s-schemas.ts; add its model`);
  try {
    new Model(structuredClone(o) as never).validate();
  } catch (err) {
    throw new Error(`${o.kind} ${o.metadata.name} does not match the Kubernetes schema: ${(err as Error).message}`);
  }
}
