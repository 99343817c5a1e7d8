{{/* Name of the release's objects, at most 63 characters. */}}
{{- define "mgo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mgo.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mgo.labels" -}}
{{ include "mgo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mgo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mgo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mgo.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Rules for the namespaced resources the operator reads and writes: exactly the verbs its API
client uses (tests/operator/test_chart.py replays a reconcile and compares).
*/}}
{{- define "mgo.namespacedRules" -}}
- apiGroups: ["memorygraph.io"]
  resources: ["memorygraphs"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["memorygraph.io"]
  resources: ["plugins"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["memorygraph.io"]
  resources: ["memorygraphs/status", "plugins/status"]
  verbs: ["patch"]
# Adopting the size an older operator's HPA gave a StatefulSet into the graph's spec.replicas.
- apiGroups: ["memorygraph.io"]
  resources: ["memorygraphs/scale"]
  verbs: ["patch"]
# Always rendered, so never pruned: garbage collection removes them with their graph.
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Only the API-key and peer-key Secrets the operator generates for a graph are ever created;
# they are never updated or deleted (garbage collection removes them with their graph).
# Secrets are never listed or watched.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
# Listed and patched to grow volumes; read to tell whether a pod leaving the graph ever ran.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end -}}
