{{- define "openbao-backup-operator.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "openbao-backup-operator.labels" -}}
app.kubernetes.io/name: openbao-backup-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "openbao-backup-operator.selector" -}}
app.kubernetes.io/name: openbao-backup-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
