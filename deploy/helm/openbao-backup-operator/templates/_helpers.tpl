{{- define "openbao-backup-operator.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "openbao-backup-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: openbao-backup-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "openbao-backup-operator.selector" -}}
app.kubernetes.io/name: openbao-backup-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The project's image at this chart's version (or image.tag). */}}
{{- define "openbao-backup-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default (printf "v%s" .Chart.AppVersion)) -}}
{{- end -}}

{{/* The executor allow-list, with the chart's own repository. */}}
{{- define "openbao-backup-operator.executorImages" -}}
{{- $images := .Values.executorImages -}}
{{- if not (has .Values.image.repository $images) -}}
{{- $images = append $images .Values.image.repository -}}
{{- end -}}
{{- join "," $images -}}
{{- end -}}
