{{/* Names, labels, the generated config and the pod template shared by Deployment and DaemonSet. */}}

{{- define "ociregistry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ociregistry.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "ociregistry.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "ociregistry.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "ociregistry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ociregistry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ociregistry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ociregistry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Fails early on values that cannot work, naming the value. */}}
{{- define "ociregistry.validate" -}}
{{- if not (has .Values.kind (list "Deployment" "DaemonSet")) }}
{{- fail (printf "kind must be Deployment or DaemonSet, got %q" .Values.kind) }}
{{- end }}
{{- if not (has .Values.persistence.type (list "pvc" "hostPath" "emptyDir")) }}
{{- fail (printf "persistence.type must be pvc, hostPath or emptyDir, got %q" .Values.persistence.type) }}
{{- end }}
{{- if and (eq .Values.kind "DaemonSet") (eq .Values.persistence.type "pvc") }}
{{- fail "kind DaemonSet needs persistence.type hostPath or emptyDir: one claim cannot serve a pod on every node" }}
{{- end }}
{{- if .Values.archives.enabled }}
{{- $v := .Values.archives.volume }}
{{- if and (not $v.nfs.server) (not $v.hostPath.path) }}
{{- fail "archives.enabled needs archives.volume.hostPath.path or archives.volume.nfs.server and .path" }}
{{- end }}
{{- if and $v.nfs.server (not $v.nfs.path) }}
{{- fail "archives.volume.nfs.server needs archives.volume.nfs.path" }}
{{- end }}
{{- end }}
{{- $modes := .Values.persistence.pvc.accessModes | default list }}
{{- if and (eq .Values.kind "Deployment") (gt (int .Values.replicas) 1) (eq .Values.persistence.type "pvc") (or (has "ReadWriteOnce" $modes) (has "ReadWriteOncePod" $modes)) }}
{{- fail (printf "replicas %d cannot share one ReadWriteOnce claim (each pod would wait for the volume): keep the store in S3 (config.store s3://BUCKET) with persistence.type emptyDir for temporary files, use a ReadWriteMany claim (persistence.pvc.accessModes), or replicas 1%s" (int .Values.replicas) (ternary "; with S3 the claim only holds temporary files: persistence.type emptyDir" "" (eq (include "ociregistry.s3" .) "true"))) }}
{{- end }}
{{- if and .Values.hostPort (ne .Values.kind "DaemonSet") }}
{{- fail "hostPort is for kind DaemonSet (a cache on every node); a Deployment is reached through its Service" }}
{{- end }}
{{- if and .Values.serverTls.enabled (not .Values.serverTls.secretName) }}
{{- fail "serverTls.enabled needs serverTls.secretName (a Secret with tls.crt, tls.key and, for clientAuth verify, ca.crt)" }}
{{- end }}
{{- end }}

{{- define "ociregistry.adminTokenEnv" -}}OCIREGISTRY_ADMIN_TOKEN{{- end }}
{{- define "ociregistry.replicaSecretEnv" -}}OCIREGISTRY_REPLICA_SECRET{{- end }}
{{- define "ociregistry.replicaUrlEnv" -}}OCIREGISTRY_REPLICA_URL{{- end }}
{{- define "ociregistry.configDir" -}}/etc/ociregistry/config{{- end }}
{{- define "ociregistry.tlsDir" -}}/etc/ociregistry/tls{{- end }}
{{- define "ociregistry.storePath" -}}/var/lib/ociregistry{{- end }}

{{/* The `config` value plus the sections other values generate. */}}
{{- define "ociregistry.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- if .Values.serverTls.enabled }}
{{- $dir := include "ociregistry.tlsDir" . }}
{{- $tls := dict "cert" (printf "%s/tls.crt" $dir) "key" (printf "%s/tls.key" $dir) "clientAuth" .Values.serverTls.clientAuth }}
{{- if eq .Values.serverTls.clientAuth "verify" }}
{{- $_ := set $tls "ca" (printf "%s/ca.crt" $dir) }}
{{- end }}
{{- $_ := set $cfg "serverTlsConfig" $tls }}
{{- end }}
{{- $_ := set $cfg "shutdownDelay" (printf "%ds" (int .Values.shutdownDelaySeconds)) }}
{{- $_ := set $cfg "drainTimeout" (printf "%ds" (int .Values.drainTimeoutSeconds)) }}
{{- if .Values.metrics.port }}
{{- $_ := set $cfg "metrics" (int .Values.metrics.port) }}
{{- end }}
{{- if .Values.archives.enabled }}
{{- $_ := set $cfg "archives" (dict "path" .Values.archives.mountPath "rescan" .Values.archives.rescan) }}
{{- end }}
{{- if .Values.admin.existingSecret }}
{{- $admin := deepCopy (get $cfg "admin" | default dict) }}
{{- $_ := set $admin "tokenFromEnv" (include "ociregistry.adminTokenEnv" .) }}
{{- $_ := set $cfg "admin" $admin }}
{{- end }}
{{- if .Values.replicaLink.existingSecret }}
{{- $_ := set $cfg "replicas" (dict "secretFromEnv" (include "ociregistry.replicaSecretEnv" .) "advertiseFromEnv" (include "ociregistry.replicaUrlEnv" .)) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Probes: HTTP(S) on the serve port, or TCP when client certificates are required. */}}
{{- define "ociregistry.probe" -}}
{{- if and .root.Values.serverTls.enabled (eq .root.Values.serverTls.clientAuth "verify") }}
tcpSocket:
  port: http
{{- else }}
httpGet:
  path: {{ .path }}
  port: http
  scheme: {{ ternary "HTTPS" "HTTP" (.root.Values.serverTls.enabled | default false) }}
{{- end }}
{{- end }}

{{- define "ociregistry.emptyDir" -}}
{{- if . }}
emptyDir:
  sizeLimit: {{ . }}
{{- else }}
emptyDir: {}
{{- end }}
{{- end }}

{{- define "ociregistry.podTemplate" -}}
metadata:
  labels:
    {{- include "ociregistry.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "ociregistry.config" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "ociregistry.serviceAccountName" . }}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds | default (add .Values.shutdownDelaySeconds .Values.drainTimeoutSeconds 10) }}
  {{- if .Values.hostNetwork }}
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- if and (eq .Values.persistence.type "hostPath") .Values.persistence.hostPath.chown.enabled }}
  initContainers:
    - name: chown-store
      image: {{ .Values.persistence.hostPath.chown.image }}
      command: ["chown", "65532:65532", {{ include "ociregistry.storePath" . | quote }}]
      securityContext:
        runAsUser: 0
        runAsNonRoot: false
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          drop: [ALL]
          add: [CHOWN]
      volumeMounts:
        - name: store
          mountPath: {{ include "ociregistry.storePath" . }}
  {{- end }}
  containers:
    - name: ociregistry
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config-file
        - {{ include "ociregistry.configDir" . }}/config.yaml
        - --image-path
        - {{ include "ociregistry.storePath" . }}
        - --port
        - {{ .Values.port | quote }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.port }}
          {{- with .Values.hostPort }}
          hostPort: {{ . }}
          {{- end }}
        {{- if .Values.metrics.port }}
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
        {{- end }}
      {{- if or .Values.upstreamSecrets .Values.admin.existingSecret .Values.replicaLink.existingSecret .Values.extraEnv }}
      env:
        {{- range .Values.upstreamSecrets }}
        - name: {{ .env }}
          valueFrom:
            secretKeyRef:
              name: {{ .secretName }}
              key: {{ .secretKey }}
        {{- end }}
        {{- if .Values.admin.existingSecret }}
        - name: {{ include "ociregistry.adminTokenEnv" . }}
          valueFrom:
            secretKeyRef:
              name: {{ .Values.admin.existingSecret }}
              key: {{ .Values.admin.secretKey }}
        {{- end }}
        {{- if .Values.replicaLink.existingSecret }}
        # Replicas stream cold blobs to each other: the shared secret, and this pod's address.
        - name: {{ include "ociregistry.replicaSecretEnv" . }}
          valueFrom:
            secretKeyRef:
              name: {{ .Values.replicaLink.existingSecret }}
              key: {{ .Values.replicaLink.secretKey }}
        - name: OCIREGISTRY_POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        - name: {{ include "ociregistry.replicaUrlEnv" . }}
          value: "{{ if .Values.serverTls.enabled }}https{{ else }}http{{ end }}://$(OCIREGISTRY_POD_IP):{{ .Values.port }}"
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      startupProbe:
        {{- include "ociregistry.probe" (dict "root" . "path" "/healthz") | trim | nindent 8 }}
        periodSeconds: {{ .Values.startupProbe.periodSeconds }}
        timeoutSeconds: 3
        failureThreshold: {{ .Values.startupProbe.failureThreshold }}
      livenessProbe:
        {{- include "ociregistry.probe" (dict "root" . "path" "/healthz") | trim | nindent 8 }}
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        {{- include "ociregistry.probe" (dict "root" . "path" "/readyz") | trim | nindent 8 }}
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 2
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: store
          mountPath: {{ include "ociregistry.storePath" . }}
        - name: tmp
          mountPath: /tmp
        - name: config
          mountPath: {{ include "ociregistry.configDir" . }}
          readOnly: true
        {{- if .Values.serverTls.enabled }}
        - name: tls
          mountPath: {{ include "ociregistry.tlsDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.archives.enabled }}
        - name: archives
          mountPath: {{ .Values.archives.mountPath }}
          readOnly: true
        {{- end }}
  volumes:
    - name: store
      {{- if eq .Values.persistence.type "pvc" }}
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.pvc.existingClaim | default (include "ociregistry.fullname" .) }}
      {{- else if eq .Values.persistence.type "hostPath" }}
      hostPath:
        path: {{ .Values.persistence.hostPath.path }}
        type: DirectoryOrCreate
      {{- else }}
      {{- include "ociregistry.emptyDir" .Values.persistence.emptyDir.sizeLimit | trim | nindent 6 }}
      {{- end }}
    - name: tmp
      {{- include "ociregistry.emptyDir" .Values.tmp.sizeLimit | trim | nindent 6 }}
    - name: config
      configMap:
        name: {{ include "ociregistry.fullname" . }}
    {{- if .Values.serverTls.enabled }}
    - name: tls
      secret:
        secretName: {{ .Values.serverTls.secretName }}
    {{- end }}
    {{- if .Values.archives.enabled }}
    - name: archives
      {{- if .Values.archives.volume.nfs.server }}
      nfs:
        server: {{ .Values.archives.volume.nfs.server }}
        path: {{ .Values.archives.volume.nfs.path }}
        readOnly: true
      {{- else }}
      hostPath:
        path: {{ .Values.archives.volume.hostPath.path }}
        type: Directory
      {{- end }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $spread := and (eq .Values.kind "Deployment") (gt (int .Values.replicas) 1) }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- else }}
  {{- if and $spread (not .Values.topologySpreadConstraints) }}
  # Replicas on different nodes when the cluster allows: one node going away keeps the cache up.
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "ociregistry.selectorLabels" . | nindent 16 }}
  {{- end }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "ociregistry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "ociregistry.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* The store is S3 (config.store s3://… or config.s3.bucket): replicas share it, no volume holds it. */}}
{{- define "ociregistry.s3" -}}
{{- if or (hasPrefix "s3://" (.Values.config.store | default "")) (get (.Values.config.s3 | default dict) "bucket") }}true{{ end }}
{{- end }}

{{/* node-config pods: labels of their own, so the cache's Service and workload never select them. */}}
{{- define "ociregistry.nodeConfigSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ociregistry.name" . }}-node-config
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The cache as containerd on a node reaches it ($(HOST_IP) is expanded by the kubelet). */}}
{{- define "ociregistry.nodeMirror" -}}
{{- $scheme := ternary "https" "http" (.Values.serverTls.enabled | default false) }}
{{- if and .Values.serverTls.enabled (eq .Values.serverTls.clientAuth "verify") }}
{{- fail "nodeConfig.enabled cannot work with serverTls.clientAuth verify: containerd on the nodes has no client certificate" }}
{{- end }}
{{- if .Values.nodeConfig.mirror }}{{ .Values.nodeConfig.mirror }}
{{- else if .Values.hostPort }}{{ $scheme }}://$(HOST_IP):{{ .Values.hostPort }}
{{- else if .Values.hostNetwork }}{{ $scheme }}://$(HOST_IP):{{ .Values.port }}
{{- else if and (eq .Values.service.type "NodePort") .Values.service.nodePort }}{{ $scheme }}://$(HOST_IP):{{ .Values.service.nodePort }}
{{- else }}{{ fail "nodeConfig.enabled needs a way for the nodes to reach the cache: service.type NodePort with service.nodePort, hostPort, hostNetwork, or nodeConfig.mirror" }}
{{- end }}
{{- end }}
