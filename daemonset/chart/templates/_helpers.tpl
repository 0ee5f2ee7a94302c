{{/* The objects' name: the release name when it already says "runnel", else "<release>-runnel". */}}
{{- define "runnel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "runnel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable for the life of a release (a DaemonSet's selector is immutable). */}}
{{- define "runnel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "runnel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "runnel.labels" -}}
{{ include "runnel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "runnel.serviceAccountName" -}}
{{- default (include "runnel.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The HTTP port, from the agent's own http.listen ("host:port"), so the two cannot disagree. */}}
{{- define "runnel.port" -}}
{{- $listen := required "config.http.listen is required (host:port)" .Values.config.http.listen | toString -}}
{{- $port := regexFind "[0-9]+$" $listen -}}
{{- if not $port -}}
{{- fail (printf "config.http.listen %q does not end in a port" $listen) -}}
{{- end -}}
{{- $port -}}
{{- end -}}
