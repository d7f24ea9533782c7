{{- define "lzo.name" -}}landing-zone-operator{{- end -}}
{{- define "lzo.fullname" -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}-landing-zone-operator{{- end -}}
{{- define "lzo.labels" -}}
app.kubernetes.io/name: {{ include "lzo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "lzo.selector" -}}
app.kubernetes.io/name: {{ include "lzo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "lzo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "lzo.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}
