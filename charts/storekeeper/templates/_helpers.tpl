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

{{/* The operator image: repository@digest when a digest is set, else repository:tag. */}}
{{- define "storekeeper.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The generated cluster rules, split: Secrets apart from the rest. */}}
{{/*
The rules of the data-store operators enabled under `delegation`, as YAML
list items (empty when none is).
*/}}
{{- define "storekeeper.delegationRules" -}}
{{- if .Values.delegation.cloudNativePG }}
{{ .Files.Get "files/cloudnative-pg-rules.yaml" }}
{{- end }}
{{- if .Values.delegation.rabbitmqClusterOperator }}
{{ .Files.Get "files/rabbitmq-cluster-operator-rules.yaml" }}
{{- end }}
{{- end -}}

{{/*
The operators `--delegate` names (comma-separated; empty when none).
*/}}
{{- define "storekeeper.delegates" -}}
{{- $d := list -}}
{{- if .Values.delegation.cloudNativePG }}{{ $d = append $d "cloudnative-pg" }}{{ end -}}
{{- if .Values.delegation.rabbitmqClusterOperator }}{{ $d = append $d "rabbitmq-cluster-operator" }}{{ end -}}
{{- join "," $d -}}
{{- end -}}

{{- define "storekeeper.rules" -}}
{{- $secrets := list -}}
{{- $others := list -}}
{{- range (.Files.Get "files/cluster-rules.yaml" | fromYamlArray) -}}
{{- if has "secrets" .resources -}}
{{- $secrets = append $secrets . -}}
{{- else -}}
{{- $others = append $others . -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "secrets" $secrets "others" $others) -}}
{{- end -}}
