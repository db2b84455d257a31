{{/* Name of every object this chart creates. */}}
{{- define "storekeeper.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "storekeeper.labels" -}}
app.kubernetes.io/name: storekeeper
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "storekeeper.selectorLabels" -}}
app.kubernetes.io/name: storekeeper
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
