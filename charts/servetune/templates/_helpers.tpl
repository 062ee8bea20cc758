{{/* The chart's name, overridable. */}}
{{- define "servetune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name, with the chart's name in front unless it already holds it. */}}
{{- define "servetune.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "servetune.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "servetune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "servetune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "servetune.labels" -}}
helm.sh/chart: {{ include "servetune.chart" . }}
{{ include "servetune.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: servetune
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "servetune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "servetune.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's service account as the subject of a binding. */}}
{{- define "servetune.subjects" -}}
- kind: ServiceAccount
  name: {{ include "servetune.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{- define "servetune.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{- define "servetune.leaseName" -}}
{{- default (include "servetune.fullname" .) .Values.leaderElection.id }}
{{- end }}

{{/* The RBAC rules, generated from config/rbac/ by `npm run generate:crds`. */}}
{{- define "servetune.rbac" -}}
{{- .Files.Get "files/rbac.yaml" }}
{{- end }}

{{/* Fails on values that would make a broken install. */}}
{{- define "servetune.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicas) 1) }}
{{- fail "leaderElection.enabled=false needs replicas: 1 (every replica would reconcile)" }}
{{- end }}
{{- if not (has (toString .Values.logLevel) (list "trace" "debug" "info" "warn" "error")) }}
{{- fail (printf "logLevel must be one of trace, debug, info, warn, error (got %v)" .Values.logLevel) }}
{{- end }}
{{- range $k := list "workers" }}
{{- if lt (int (index $.Values $k)) 1 }}{{ fail (printf "%s must be at least 1" $k) }}{{ end }}
{{- end }}
{{- if lt (int .Values.sweep.maxConcurrent) 1 }}{{ fail "sweep.maxConcurrent must be at least 1" }}{{ end }}
{{- if lt (int .Values.sweep.threads) 1 }}{{ fail "sweep.threads must be at least 1" }}{{ end }}
{{- end }}
