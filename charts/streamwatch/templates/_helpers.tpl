{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "streamwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-prefixed unless the release already contains the chart name. */}}
{{- define "streamwatch.fullname" -}}
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

{{/* Labels every object carries. */}}
{{- define "streamwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "streamwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streamwatch
{{- end }}

{{/* Selector labels: never helm.sh/chart or version, which change on upgrade and break selectors. */}}
{{- define "streamwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of one component's objects: "<fullname>-<component>", 63-char safe. Call with (list $ "component"). */}}
{{- define "streamwatch.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "streamwatch.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Metadata labels of one component. Call with (list $ "component"). */}}
{{- define "streamwatch.componentLabels" -}}
{{ include "streamwatch.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Selector labels of one component. Call with (list $ "component"). */}}
{{- define "streamwatch.componentSelectorLabels" -}}
{{ include "streamwatch.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Image of one of our services: registry/prefix/service:tag, the tag pinned to appVersion by default.
     Call with (list $ "service-name"). */}}
{{- define "streamwatch.serviceImage" -}}
{{- $root := index . 0 }}
{{- $img := $root.Values.image }}
{{- $repo := printf "%s%s" $img.repositoryPrefix (index . 1) }}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $repo }}{{ end }}
{{- $override := index (default dict $img.overrides) (index . 1) }}
{{- if $override }}{{ $override }}{{ else }}{{ printf "%s:%s" $repo (default $root.Chart.AppVersion $img.tag) }}{{ end }}
{{- end }}

{{/* An infrastructure image from {repository, tag}. */}}
{{- define "streamwatch.image" -}}
{{- printf "%s:%s" .repository .tag }}
{{- end }}

{{/* Service account name of one component. Call with (list $ "component"). */}}
{{- define "streamwatch.serviceAccountName" -}}
{{- include "streamwatch.componentName" . }}
{{- end }}

{{/* Pod-level security context shared by every pod: non-root, default seccomp profile. */}}
{{- define "streamwatch.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsUser }}
fsGroup: {{ .runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context shared by every container: nothing writable but mounted volumes. */}}
{{- define "streamwatch.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* Where one component's pods run and what they may use, with podDefaults under every component.
     Call with (list $ componentValues "placement" "component") inside a pod spec: nodeSelector (merged,
     the component's keys win), tolerations, affinity and topologySpreadConstraints (the component's when
     it sets them, else podDefaults'; a constraint without a labelSelector spreads the component's own
     pods), and no service links: Kubernetes would otherwise put <SERVICE>_PORT... variables for every
     Service of the namespace into the environment, and one named like a settings prefix (a Service
     "observer-x" gives OBSERVER_X_PORT) would stop the service, which refuses unknown prefixed variables.
     Call with (list $ componentValues "resources") under a container's `resources:`: podDefaults.resources
     deep-merged under the component's (its keys win). */}}
{{- define "streamwatch.podSpec" -}}
{{- $root := index . 0 }}
{{- $defaults := $root.Values.podDefaults }}
{{- $v := index . 1 }}
{{- if eq (index . 2) "resources" }}
{{- toYaml (mergeOverwrite (deepCopy (default dict $defaults.resources)) (deepCopy (default dict $v.resources))) }}
{{- else }}
enableServiceLinks: false
{{- with mergeOverwrite (deepCopy (default dict $defaults.nodeSelector)) (default dict $v.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with default $defaults.tolerations $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with default $defaults.affinity $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $component := ternary (index . 3) "" (gt (len .) 3) }}
{{- with default $defaults.topologySpreadConstraints $v.topologySpreadConstraints }}
{{- $constraints := list }}
{{- range . }}
{{- $constraint := deepCopy . }}
{{- if and $component (not (hasKey $constraint "labelSelector")) }}
{{- $own := include "streamwatch.componentSelectorLabels" (list $root $component) | fromYaml }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $own) }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
topologySpreadConstraints:
  {{- toYaml $constraints | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels and annotations of one component's pods (the pod template's `metadata` keys): the chart's own,
     then podDefaults.podLabels/podAnnotations and the component's own podLabels/podAnnotations (its keys
     win). A key the chart sets itself is refused, not overridden: selectors and Services match the
     chart's labels, and its annotations carry the scrape port and config checksums.
     Call with (list $ componentValues "component" chartAnnotations). */}}
{{- define "streamwatch.podMetadata" -}}
{{- $root := index . 0 }}
{{- $v := index . 1 }}
{{- $c := index . 2 }}
{{- $chart := dict "podLabels" (include "streamwatch.componentLabels" (list $root $c) | fromYaml) "podAnnotations" (index . 3) }}
{{- $extra := dict }}
{{- range $kind := list "podLabels" "podAnnotations" }}
{{- $given := list (list "podDefaults" (default dict (get $root.Values.podDefaults $kind))) (list (include "streamwatch.valuesKey" $c) (default dict (get $v $kind))) }}
{{- $merged := dict }}
{{- range $given }}
{{- $where := index . 0 }}
{{- range $key, $value := index . 1 }}
{{- if hasKey (get $chart $kind) $key }}
{{- fail (printf "%s.%s: %q is set by the chart itself; choose another key" $where $kind $key) }}
{{- end }}
{{- $_ := set $merged $key $value }}
{{- end }}
{{- end }}
{{- $_ := set $extra $kind $merged }}
{{- end -}}
labels:
  {{- include "streamwatch.componentLabels" (list $root $c) | nindent 2 }}
  {{- with $extra.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with merge (dict) $extra.podAnnotations (index . 3) }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* `annotations:` of one component's ServiceAccount, or nothing: podDefaults.serviceAccount.annotations
     with the component's serviceAccount.annotations over them (its keys win), e.g. the cloud identity
     (workload identity) the component's pods act as. Call with (list $ componentValues). */}}
{{- define "streamwatch.serviceAccountAnnotations" -}}
{{- $defaults := (index . 0).Values.podDefaults.serviceAccount | default dict }}
{{- $own := (index . 1).serviceAccount | default dict }}
{{- with mergeOverwrite (deepCopy (default dict $defaults.annotations)) (deepCopy (default dict $own.annotations)) -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Kafka bootstrap address: the Strimzi cluster's bootstrap Service, or an existing cluster. */}}
{{- define "streamwatch.kafkaBootstrap" -}}
{{- if .Values.kafka.enabled }}
{{- printf "%s-kafka-bootstrap:9092" (include "streamwatch.kafkaClusterName" .) }}
{{- else }}
{{- required "kafka.external.bootstrapServers is required when kafka.enabled=false" .Values.kafka.external.bootstrapServers }}
{{- end }}
{{- end }}

{{/* Name of the Strimzi Kafka resource (the operator derives its Service names from it). */}}
{{- define "streamwatch.kafkaClusterName" -}}
{{- include "streamwatch.componentName" (list . "kafka") }}
{{- end }}

{{/* Pushgateway URL: the bundled one or an existing one. */}}
{{- define "streamwatch.pushgatewayUrl" -}}
{{- if .Values.pushgateway.enabled }}
{{- printf "http://%s:9091" (include "streamwatch.componentName" (list . "pushgateway")) }}
{{- else }}
{{- required "pushgateway.external.url is required when pushgateway.enabled=false" .Values.pushgateway.external.url }}
{{- end }}
{{- end }}

{{/* Elasticsearch URL: the bundled single node or an existing cluster. */}}
{{- define "streamwatch.elasticsearchUrl" -}}
{{- if .Values.elasticsearch.enabled }}
{{- printf "http://%s:9200" (include "streamwatch.componentName" (list . "elasticsearch")) }}
{{- else }}
{{- required "elasticsearch.external.url is required when elasticsearch.enabled=false" .Values.elasticsearch.external.url }}
{{- end }}
{{- end }}

{{/* Secret holding the Elasticsearch password (key "password"). */}}
{{- define "streamwatch.elasticsearchSecretName" -}}
{{- if not .Values.elasticsearch.enabled }}
{{- required "elasticsearch.external.existingSecret (key \"password\") is required when elasticsearch.enabled=false" .Values.elasticsearch.external.existingSecret }}
{{- else }}
{{- include "streamwatch.componentName" (list . "elasticsearch") }}
{{- end }}
{{- end }}

{{/* Profile publisher base URL inside the cluster. */}}
{{- define "streamwatch.profilePublisherUrl" -}}
{{- printf "http://%s:%d" (include "streamwatch.componentName" (list . "profile-publisher")) (int .Values.profilePublisher.port) }}
{{- end }}

{{/* A password kept stable across upgrades: reuse the Secret's current value when the cluster has one
     (lookup returns nothing under `helm template`, so offline renders get a fresh random value).
     Call with (dict "root" $ "name" secretName "key" dataKey). */}}
{{- define "streamwatch.stableSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $existing (hasKey $existing "data") (hasKey $existing.data .key) }}
{{- index $existing.data .key }}
{{- else }}
{{- randAlphaNum 32 | b64enc }}
{{- end }}
{{- end }}

{{/* Environment every service container gets: logging and the ops port. Call with (list $ opsPort-or-nil). */}}
{{- define "streamwatch.commonEnv" -}}
{{- $root := index . 0 }}
- name: LOG_FORMAT
  value: {{ $root.Values.logging.format | quote }}
- name: LOG_LEVEL
  value: {{ $root.Values.logging.level | quote }}
{{- with index . 1 }}
- name: OPS_PORT
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Kafka connection environment. */}}
{{- define "streamwatch.kafkaEnv" -}}
{{- $root := . }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "streamwatch.kafkaBootstrap" $root | quote }}
{{- with $root.Values.kafka.clientProperties }}
- name: KAFKA_PROPERTIES
  value: {{ toJson . | quote }}
{{- end }}
{{- with $root.Values.kafka.sasl.passwordSecret }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $root.Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end }}

{{/* Elasticsearch connection environment, password from the Secret. */}}
{{- define "streamwatch.elasticsearchEnv" -}}
- name: ELASTICSEARCH_URL
  value: {{ include "streamwatch.elasticsearchUrl" . | quote }}
- name: ELASTICSEARCH_USERNAME
  value: {{ ternary "elastic" .Values.elasticsearch.external.username .Values.elasticsearch.enabled | quote }}
- name: ELASTICSEARCH_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "streamwatch.elasticsearchSecretName" . }}
      key: password
{{- end }}

{{/* A service's own settings: a map of settings-model field names to values, as <PREFIX><FIELD> env vars.
     The keys a map may hold are in values.schema.json, generated from the models (`make docs`). A null
     value renders nothing: the service keeps its default. A whole number renders without a fraction or
     exponent (values files give numbers as floats: 16777216 would read "1.6777216e+07").
     Call with (list "PREFIX_" settingsMap). */}}
{{- define "streamwatch.settingsEnv" -}}
{{- $prefix := index . 0 }}
{{- range $field, $value := index . 1 }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ printf "%s%s" $prefix $field | upper }}
  value: {{ if kindIs "map" $value }}{{ toJson $value | quote }}{{ else if kindIs "slice" $value }}{{ join "," $value | quote }}{{ else if and (kindIs "float64" $value) (eq $value (floor $value)) }}{{ int64 $value | toString | quote }}{{ else }}{{ $value | toString | quote }}{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Probes on an HTTP port serving /healthz and /readyz. Call with (list portName probesValues). */}}
{{- define "streamwatch.httpProbes" -}}
{{- $port := index . 0 }}
{{- $p := index . 1 }}
startupProbe:
  httpGet: {path: /healthz, port: {{ $port }}}
  periodSeconds: 5
  failureThreshold: {{ $p.startupFailureThreshold }}
livenessProbe:
  httpGet: {path: /healthz, port: {{ $port }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: {{ $port }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/* Prometheus scrape annotations for a pod serving /metrics on a port. */}}
{{- define "streamwatch.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ . | quote }}
prometheus.io/path: /metrics
{{- end }}

{{/* values.yaml key of a component: "visits-writer" -> "visitsWriter". */}}
{{- define "streamwatch.valuesKey" -}}
{{- $parts := splitList "-" . }}
{{- $out := first $parts }}
{{- range rest $parts }}{{ $out = printf "%s%s" $out (title .) }}{{ end }}
{{- $out }}
{{- end }}

{{/*
The consumer groups the Spark jobs commit their end offsets to (<job>.settings.commit_group): each job's
own, never the observer's (a group with members refuses a job's commits). The service refuses a shared
group at run time (group_commit_refused); the chart refuses the values that would share one.
*/}}
{{- define "streamwatch.commitGroupsApart" -}}
{{- $writer := .Values.visitsWriter.settings.commit_group | default "" }}
{{- $passthrough := .Values.passthrough.settings.commit_group | default "" }}
{{- $observer := .Values.observer.settings.group_id | default "streamwatch-observer" }}
{{- if and $writer (eq $writer $passthrough) }}
{{- fail (printf "visitsWriter.settings.commit_group and passthrough.settings.commit_group are both %q: each job needs a group of its own, or each refuses the other's offsets, so name them apart." $writer) }}
{{- end }}
{{- range $where, $group := dict "visitsWriter" $writer "passthrough" $passthrough }}
{{- if and $group (eq $group $observer) }}
{{- fail (printf "%s.settings.commit_group %q is the observer's own consumer group (observer.settings.group_id), whose members would refuse the job's commits: choose another name." $where $group) }}
{{- end }}
{{- end }}
{{- end }}
