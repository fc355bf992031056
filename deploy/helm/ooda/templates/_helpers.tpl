{{- define "ooda.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "ooda.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ooda.labels" -}}
{{ include "ooda.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "ooda.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The namespaces ooda's actions change: the estate's, and any extra ones. */}}
{{- define "ooda.targetNamespaces" -}}
{{- $all := prepend .Values.rbac.extraNamespaces (required "config.namespace is required" .Values.config.namespace) -}}
{{- join "," (uniq $all) -}}
{{- end }}

{{/* The configuration `ooda run` reads: the values' config, leader-elected in this namespace,
every region in-cluster unless it names a kubeconfig. */}}
{{- define "ooda.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $regions := list -}}
{{- range $cfg.regions -}}
{{- $r := deepCopy . -}}
{{- if not (or (hasKey $r "kubeconfig") (hasKey $r "in_cluster")) -}}
{{- $_ := set $r "in_cluster" true -}}
{{- end -}}
{{- $regions = append $regions $r -}}
{{- end -}}
{{- $_ := set $cfg "regions" $regions -}}
{{- $leader := mustMergeOverwrite (default (dict) $cfg.leader) (dict "enabled" true "namespace" .Release.Namespace) -}}
{{- $_ := set $cfg "leader" $leader -}}
{{- toYaml $cfg -}}
{{- end }}
