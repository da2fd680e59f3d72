{{/* Full name of the release's objects, at most 63 characters. */}}
{{- define "meshsettings-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "meshsettings-operator.serviceAccountName" -}}
{{- default (include "meshsettings-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "meshsettings-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "meshsettings-operator.labels" -}}
{{ include "meshsettings-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The ConfigMaps the operator may patch and delete: one per revision, and any spec.target names. */}}
{{- define "meshsettings-operator.configMapNames" -}}
{{- $names := list -}}
{{- range .Values.controlPlane.revisions }}{{ $names = append $names (ternary "istio" (printf "istio-%s" .) (eq . "")) }}{{ end -}}
{{- toYaml (concat $names .Values.controlPlane.configMapNames | uniq) -}}
{{- end -}}

{{/* The istiod Deployments the operator may patch. */}}
{{- define "meshsettings-operator.istiodNames" -}}
{{- $names := list -}}
{{- range .Values.controlPlane.revisions }}{{ $names = append $names (ternary "istiod" (printf "istiod-%s" .) (eq . "")) }}{{ end -}}
{{- toYaml (concat $names .Values.controlPlane.istiodDeploymentNames | uniq) -}}
{{- end -}}

{{/* The rules for ConfigMaps and Deployments, shared by the Role and (all namespaces) the ClusterRole. */}}
{{- define "meshsettings-operator.targetRules" -}}
- apiGroups:
  - ""
  resources:
  - configmaps
  verbs:
  - create
  - get
  - list
  - watch
- apiGroups:
  - ""
  resourceNames:
  {{- include "meshsettings-operator.configMapNames" . | nindent 2 }}
  resources:
  - configmaps
  verbs:
  - delete
  - patch
- apiGroups:
  - apps
  resources:
  - deployments
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - apps
  resourceNames:
  {{- include "meshsettings-operator.istiodNames" . | nindent 2 }}
  resources:
  - deployments
  verbs:
  - patch
{{- end -}}
