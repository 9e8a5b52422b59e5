{{/* How each service is wired to the rest of the release: topics, volumes, URLs and Secrets. The names
     are the services' settings (the settings.py of each service); tests/chart checks them. */}}

{{- define "streamwatch.generatorEnv" -}}
{{ include "streamwatch.kafkaEnv" . }}
- name: GENERATOR_TOPIC
  value: {{ .Values.kafka.topics.visits.name | quote }}
{{- end }}

{{- define "streamwatch.visitsWriterEnv" -}}
{{- $url := .Values.visitsWriter.storage.url }}
{{- $data := $url | default .Values.visitsWriter.storage.mountPath | trimSuffix "/" }}
{{ include "streamwatch.kafkaEnv" . }}
- name: VISITS_WRITER_SOURCE_TOPIC
  value: {{ .Values.kafka.topics.visits.name | quote }}
- name: VISITS_WRITER_CHECKPOINT_PATH
  value: {{ printf "%s/checkpoints/visits-writer" $data | quote }}
- name: VISITS_WRITER_VISITS_TABLE_PATH
  value: {{ printf "%s/delta/visits" $data | quote }}
- name: VISITS_WRITER_DEAD_LETTER_TABLE_PATH
  value: {{ printf "%s/delta/visits_dead_letters" $data | quote }}
{{- include "streamwatch.objectStoreEnv" (list . $url) }}
- name: VISITS_WRITER_PUSHGATEWAY_URL
  value: {{ include "streamwatch.pushgatewayUrl" . | quote }}
{{- if not (hasKey .Values.visitsWriter.settings "instance") }}
- name: VISITS_WRITER_INSTANCE
  value: {{ include "streamwatch.visitsWriterPushInstance" . | quote }}
{{- end }}
{{- if not (hasKey .Values.visitsWriter.settings "sla_seconds") }}
{{- /* The SLA alert's threshold is a bucket bound of the batch-duration histogram. */}}
- name: VISITS_WRITER_SLA_SECONDS
  value: {{ divf .Values.alerts.slaMiss.thresholdMs 1000 | quote }}
{{- end }}
{{- end }}

{{- define "streamwatch.passthroughEnv" -}}
{{ include "streamwatch.kafkaEnv" . }}
- name: PASSTHROUGH_SOURCE_TOPIC
  value: {{ .Values.kafka.topics.visits.name | quote }}
- name: PASSTHROUGH_TARGET_TOPIC
  value: {{ .Values.kafka.topics.processedVisits.name | quote }}
- name: PASSTHROUGH_CHECKPOINT_PATH
  value: {{ include "streamwatch.passthroughCheckpoint" . | quote }}
{{- include "streamwatch.objectStoreEnv" (list . .Values.passthrough.checkpoint.url) }}
- name: PASSTHROUGH_PUSHGATEWAY_URL
  value: {{ include "streamwatch.pushgatewayUrl" . | quote }}
{{- if not (hasKey .Values.passthrough.settings "instance") }}
- name: PASSTHROUGH_INSTANCE
  value: {{ include "streamwatch.passthroughPushInstance" . | quote }}
{{- end }}
{{- end }}

{{- define "streamwatch.observerEnv" -}}
{{ include "streamwatch.kafkaEnv" . }}
{{ include "streamwatch.elasticsearchEnv" . }}
{{- include "streamwatch.elasticsearchIndexReplicasEnv" . }}
- name: OBSERVER_TOPIC
  value: {{ .Values.kafka.topics.processedVisits.name | quote }}
- name: OBSERVER_SOURCE_TOPIC
  value: {{ .Values.kafka.topics.visits.name | quote }}
- name: OBSERVER_CHECKPOINT_PATH
  value: {{ include "streamwatch.passthroughCheckpoint" . | quote }}
- name: OBSERVER_WATCHED_JOBS
  value: {{ include "streamwatch.watchedJobs" . | quote }}
{{- include "streamwatch.objectStoreEnv" (list . (or .Values.passthrough.checkpoint.url .Values.observer.watchedJobs)) }}
- name: OBSERVER_PROFILE_DIR
  value: /tmp/profiles
{{- if .Values.profilePublisher.enabled }}
- name: OBSERVER_PROFILE_PUBLISHER_URL
  value: {{ include "streamwatch.profilePublisherUrl" . | quote }}
- name: OBSERVER_PROFILE_PUBLISHER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "streamwatch.profilePublisherTokenSecret" . }}
      key: token
{{- end }}
{{- end }}

{{- define "streamwatch.profilePublisherEnv" -}}
{{ include "streamwatch.elasticsearchEnv" . }}
{{- include "streamwatch.elasticsearchIndexReplicasEnv" . }}
- name: PROFILE_PUBLISHER_PORT
  value: {{ .Values.profilePublisher.port | quote }}
- name: PROFILE_PUBLISHER_STORE_DIR
  value: {{ .Values.profilePublisher.storage.mountPath | quote }}
- name: PROFILE_PUBLISHER_PUBLIC_URL
  value: {{ .Values.profilePublisher.publicUrl | quote }}
- name: PROFILE_PUBLISHER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "streamwatch.profilePublisherTokenSecret" . }}
      key: token
{{- end }}

{{/* number_of_replicas of the indices the observer and the profile publisher create (a line beginning
     with a newline, or nothing): elasticsearch.indexReplicas when set, else 0 for the bundled single
     node, which can place no replica (an index asking for one stays yellow), else nothing: an external
     cluster's own default. */}}
{{- define "streamwatch.elasticsearchIndexReplicasEnv" -}}
{{- $replicas := .Values.elasticsearch.indexReplicas }}
{{- if and (kindIs "invalid" $replicas) .Values.elasticsearch.enabled }}
{{- $replicas = 0 }}
{{- end }}
{{- if not (kindIs "invalid" $replicas) }}
- name: ELASTICSEARCH_INDEX_REPLICAS
  value: {{ int $replicas | quote }}
{{- end }}
{{- end }}

{{/* Secret holding the profile publisher's upload token (key "token"). */}}
{{- define "streamwatch.profilePublisherTokenSecret" -}}
{{- default (include "streamwatch.componentName" (list . "profile-publisher")) .Values.profilePublisher.token.existingSecret }}
{{- end }}

{{/* Names a service takes from its settings and other layers must match: the visits writer's and the
     passthrough's Pushgateway `job` (alert matchers, dashboards, helm test) and the two Elasticsearch
     indices (Grafana datasources, helm test). One value each, in values.yaml under <service>.settings,
     so the service's env var and every other use render from it. */}}
{{- define "streamwatch.visitsWriterPushJob" -}}
{{- required "visitsWriter.settings.push_job must name the visits writer's Pushgateway job" .Values.visitsWriter.settings.push_job }}
{{- end }}

{{- define "streamwatch.passthroughPushJob" -}}
{{- required "passthrough.settings.push_job must name the passthrough's Pushgateway job" .Values.passthrough.settings.push_job }}
{{- end }}

{{/* The `instance` of each Spark job's Pushgateway group: the same for every pod of the job, so that a
     new pod (a rollout, a killed pod replaced) takes the group over and the alerts judge the job, never
     a pod that is gone. "<namespace>/<deployment>" keeps releases apart on a shared Pushgateway; a
     value under <service>.settings.instance replaces it. The pod name is the pushed `pod` label. */}}
{{- define "streamwatch.visitsWriterPushInstance" -}}
{{- default (printf "%s/%s" .Release.Namespace (include "streamwatch.componentName" (list . "visits-writer"))) .Values.visitsWriter.settings.instance }}
{{- end }}

{{- define "streamwatch.passthroughPushInstance" -}}
{{- default (printf "%s/%s" .Release.Namespace (include "streamwatch.componentName" (list . "passthrough"))) .Values.passthrough.settings.instance }}
{{- end }}

{{- define "streamwatch.observerIndex" -}}
{{- required "observer.settings.index must name the observation index" .Values.observer.settings.index }}
{{- end }}

{{- define "streamwatch.profilePublisherIndex" -}}
{{- required "profilePublisher.settings.elasticsearch_index must name the profile index" .Values.profilePublisher.settings.elasticsearch_index }}
{{- end }}

{{/* "true" when the passthrough's checkpoint is a volume (its claim, mounted by the passthrough and,
     read-only, by the observer); empty when there is no passthrough or its checkpoint is on object
     storage (passthrough.checkpoint.url). */}}
{{- define "streamwatch.checkpointOnVolume" -}}
{{- if and .Values.passthrough.enabled (not .Values.passthrough.checkpoint.url) }}true{{ end }}
{{- end }}

{{/* Where the passthrough keeps its checkpoint and the observer reads it: the object-store URL, or the
     volume's mount path. */}}
{{- define "streamwatch.passthroughCheckpoint" -}}
{{- .Values.passthrough.checkpoint.url | default .Values.passthrough.checkpoint.mountPath }}
{{- end }}

{{/* The object store's connection (objectStore), for what a pod keeps or reads there (the passthrough's
     checkpoint, the visits writer's tables and checkpoint, a watched job's checkpoint); nothing otherwise. The credentials come from the Secret, never
     from values. Call with (list $ onObjectStore). */}}
{{- define "streamwatch.objectStoreEnv" -}}
{{- $o := (index . 0).Values.objectStore }}
{{- if index . 1 }}
{{- with $o.endpoint }}
- name: S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: S3_REGION
  value: {{ $o.region | quote }}
{{- with $o.credentialsSecret.name }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: {{ $o.credentialsSecret.accessKeyIdKey | quote }}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: {{ $o.credentialsSecret.secretAccessKeyKey | quote }}}
{{- end }}
{{- end }}
{{- end }}

{{/* observer.watchedJobs as OBSERVER_WATCHED_JOBS wants it: a JSON list of {name, checkpoint,
     source_topic} (the alerts stay with the rules). */}}
{{- define "streamwatch.watchedJobs" -}}
{{- $jobs := list }}
{{- $names := list ($.Values.observer.settings.job | default "passthrough") }}
{{- range $.Values.observer.watchedJobs }}
{{- if has .name $names }}
{{- fail (printf "observer.watchedJobs: the name %q is taken (by another watched job, or observer.settings.job): each job's series and documents need a name of their own." .name) }}
{{- end }}
{{- $names = append $names .name }}
{{- $jobs = append $jobs (dict "name" .name "checkpoint" .checkpoint "source_topic" .sourceTopic) }}
{{- end }}
{{- toJson $jobs }}
{{- end }}
