{{/* Executors as pods for the two Spark jobs (<component>.spark.executors): the job stays the driver, in
     client mode, in its Deployment's pod; Spark's Kubernetes scheduler makes the executor pods from the
     pod template below, in the job's own image. */}}

{{/* "true" when component (visits-writer or passthrough) asks for executor pods. Call with (list $ c). */}}
{{- define "streamwatch.executorsOn" -}}
{{- $v := index (index . 0).Values (include "streamwatch.valuesKey" (index . 1)) }}
{{- if and $v.enabled (gt (int $v.spark.executors.count) 0) }}true{{ end }}
{{- end }}

{{/* The driver's headless Service: executors connect to it on the fixed driver and block-manager ports. */}}
{{- define "streamwatch.driverServiceName" -}}
{{- include "streamwatch.componentName" (list (index . 0) (printf "%s-driver" (index . 1))) }}
{{- end }}

{{/* Where the driver container reads the executor pod template (the ConfigMap's mount). */}}
{{- define "streamwatch.executorTemplateDir" -}}/etc/streamwatch/executor{{- end }}

{{/* The job's executor settings, always rendered (executors 0: none, the job runs in its pod). Call with
     (list $ c "PREFIX_"). */}}
{{- define "streamwatch.executorEnv" -}}
{{- $root := index . 0 }}
{{- $c := index . 1 }}
{{- $prefix := index . 2 }}
{{- $e := (index $root.Values (include "streamwatch.valuesKey" $c)).spark.executors }}
- name: {{ $prefix }}EXECUTORS
  value: {{ int $e.count | toString | quote }}
- name: {{ $prefix }}EXECUTORS_MAX
  value: {{ int $e.max | toString | quote }}
- name: {{ $prefix }}EXECUTOR_CORES
  value: {{ int $e.cores | toString | quote }}
- name: {{ $prefix }}EXECUTOR_MEMORY
  value: {{ $e.memory | quote }}
- name: {{ $prefix }}EXECUTOR_CPU_REQUEST
  value: {{ $e.cpuRequest | quote }}
- name: {{ $prefix }}EXECUTOR_IMAGE
  value: {{ include "streamwatch.serviceImage" (list $root $c) | quote }}
- name: {{ $prefix }}EXECUTOR_POD_TEMPLATE
  value: {{ printf "%s/pod-template.yaml" (include "streamwatch.executorTemplateDir" .) | quote }}
- name: {{ $prefix }}KUBERNETES_NAMESPACE
  valueFrom:
    fieldRef: {fieldPath: metadata.namespace}
- name: {{ $prefix }}DRIVER_SERVICE
  value: {{ printf "%s.%s.svc" (include "streamwatch.driverServiceName" (list $root $c)) $root.Release.Namespace | quote }}
- name: {{ $prefix }}DRIVER_POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
{{- end }}

{{/* What the chart refuses about executors, before anything is applied. Call with (list $ c). */}}
{{- define "streamwatch.executorsRefused" -}}
{{- $root := index . 0 }}
{{- $c := index . 1 }}
{{- $key := include "streamwatch.valuesKey" $c }}
{{- $v := index $root.Values $key }}
{{- if hasPrefix "k8s://" (toString (dig "spark_master" "" $v.settings)) }}
{{- fail (printf "%s.settings.spark_master: a k8s:// master needs the ServiceAccount's Role, the driver Service and the executor pod template that %s.spark.executors.count makes; set that instead." $key $key) }}
{{- end }}
{{- if and (include "streamwatch.executorsOn" .) (eq $c "visits-writer") (eq (toString (dig "connector" "python" $v.settings)) "jvm") (not $v.storage.url) }}
{{- fail "visitsWriter.spark.executors.count: on the jvm connector delta-spark writes the tables' files from the executors, which cannot share the writer's ReadWriteOnce volume; put the tables on object storage (visitsWriter.storage.url) or use the python connector, whose driver writes them." }}
{{- end }}
{{- if and (gt (int $v.spark.executors.max) 0) (lt (int $v.spark.executors.max) (max 1 (int $v.spark.executors.count) | int)) }}
{{- fail (printf "%s.spark.executors.max must be 0 (a fixed count) or at least count (and 1)." $key) }}
{{- end }}
{{- end }}
