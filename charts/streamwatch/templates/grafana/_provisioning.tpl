{{/* Grafana datasources with fixed uids, so alert rules can name them and the dashboards' datasource
     variables default to them. Passwords are read by Grafana from its environment
     ($ELASTICSEARCH_PASSWORD), never written here. */}}
{{- define "streamwatch.grafanaDatasources" -}}
apiVersion: 1
datasources:
  - name: Prometheus
    uid: streamwatch-prometheus
    type: prometheus
    access: proxy
    url: {{ default (printf "http://%s:9090" (include "streamwatch.componentName" (list . "prometheus"))) .Values.grafana.prometheusUrl }}
    isDefault: true
    editable: false
    jsonData:
      timeInterval: {{ .Values.prometheus.scrapeInterval }}
      # Shows the Prometheus alert rules of the chart in Grafana's alert list.
      manageAlerts: true
  {{- /* The indices the observer and the publisher write: the same values as their env vars. */}}
  {{- range $ds := list (dict "name" "Observations" "uid" "streamwatch-observations" "index" (include "streamwatch.observerIndex" .)) (dict "name" "Profile reports" "uid" "streamwatch-profiles" "index" (include "streamwatch.profilePublisherIndex" .)) }}
  - name: {{ $ds.name }}
    uid: {{ $ds.uid }}
    type: elasticsearch
    access: proxy
    url: {{ include "streamwatch.elasticsearchUrl" $ }}
    editable: false
    basicAuth: true
    basicAuthUser: {{ ternary "elastic" $.Values.elasticsearch.external.username $.Values.elasticsearch.enabled }}
    jsonData:
      index: {{ $ds.index }}
      timeField: "@timestamp"
      maxConcurrentShardRequests: 5
    secureJsonData:
      basicAuthPassword: $ELASTICSEARCH_PASSWORD
  {{- end }}
{{- end }}

{{/* Where Grafana finds the dashboard JSON files. */}}
{{- define "streamwatch.grafanaDashboardProvider" -}}
apiVersion: 1
providers:
  - name: streamwatch
    orgId: 1
    folder: streamwatch
    type: file
    disableDeletion: true
    allowUiUpdates: false
    options:
      path: /etc/grafana/dashboards
{{- end }}

{{/* One Grafana-managed alert rule on a Prometheus query; the thresholds come from .Values.alerts, like
     the Prometheus rule files, and runbook_url points at the same README section as the Prometheus
     alert of that name. Call with (dict "uid" "title" "expr" "threshold" "for" "summary" "runbook"),
     runbook being (include "streamwatch.runbookUrl" ...). */}}
{{- define "streamwatch.grafanaAlertRule" -}}
- uid: {{ .uid }}
  title: {{ .title | quote }}
  condition: C
  data:
    - refId: A
      relativeTimeRange: {from: 600, to: 0}
      datasourceUid: streamwatch-prometheus
      model:
        refId: A
        expr: {{ .expr | quote }}
        instant: true
        intervalMs: 1000
        maxDataPoints: 43200
    - refId: B
      relativeTimeRange: {from: 0, to: 0}
      datasourceUid: __expr__
      model: {refId: B, type: reduce, expression: A, reducer: last}
    - refId: C
      relativeTimeRange: {from: 0, to: 0}
      datasourceUid: __expr__
      model:
        refId: C
        type: threshold
        expression: B
        conditions:
          - evaluator: {type: gt, params: [{{ .threshold }}]}
  for: {{ .for }}
  noDataState: OK
  execErrState: Error
  labels:
    severity: warning
    team: streamwatch
  annotations:
    summary: {{ .summary | quote }}
    runbook_url: {{ .runbook | quote }}
{{- end }}

{{/* Grafana alert rules as code, mirroring the Prometheus rules so they show in Grafana's alert list. They
     read this release's series only, as the Prometheus rules do (templates/prometheus/_rules.tpl), since
     grafana.prometheusUrl may name a Prometheus that other releases share. */}}
{{- define "streamwatch.grafanaAlertRules" -}}
{{- $a := .Values.alerts }}
{{- $release := include "streamwatch.releaseMatcher" . }}
apiVersion: 1
groups:
  - orgId: 1
    name: streamwatch
    folder: streamwatch
    interval: 10s
    rules:
      {{- include "streamwatch.grafanaAlertRule" (dict "uid" "streamwatch-sla-miss" "title" "SLA miss visits synchronizer" "expr" (printf "max%s" (include "streamwatch.pushedSeries" (list $ "visits_sync_duration" "visitsWriter"))) "threshold" $a.slaMiss.thresholdMs "for" $a.slaMiss.for "summary" (printf "visits synchronizer micro-batches take longer than %v ms" $a.slaMiss.thresholdMs) "runbook" (include "streamwatch.runbookUrl" (list $ "sla-miss-visits-synchronizer"))) | nindent 6 }}
      {{- include "streamwatch.grafanaAlertRule" (dict "uid" "streamwatch-passthrough-lag" "title" "passthrough lag" "expr" (printf "count(%s)" (include "streamwatch.lagByJob" (list $ "observer_lag_offsets" "lagThresholdOffsets" $a.lag.thresholdOffsets))) "threshold" 0 "for" $a.lag.for "summary" (printf "partitions lagging behind a Spark job by more than its threshold (%v offsets, or the job's own in observer.watchedJobs)" $a.lag.thresholdOffsets) "runbook" (include "streamwatch.runbookUrl" (list $ "passthrough-lag"))) | nindent 6 }}
      {{- include "streamwatch.grafanaAlertRule" (dict "uid" "streamwatch-field-drift" "title" "field drift" "expr" (printf "max(observer_field_drift{%s})" $release) "threshold" $a.drift.threshold "for" $a.drift.for "summary" (printf "a field's distribution drifted more than %v (Jensen-Shannon distance) between two windows of a partition" $a.drift.threshold) "runbook" (include "streamwatch.runbookUrl" (list $ "field-drift"))) | nindent 6 }}
      {{- include "streamwatch.grafanaAlertRule" (dict "uid" "streamwatch-field-drift-from-reference" "title" "field drift from reference" "expr" (printf "max(observer_field_drift_reference{%s})" $release) "threshold" $a.driftReference.threshold "for" $a.driftReference.for "summary" (printf "a field's distribution drifted more than %v (Jensen-Shannon distance) from the partition's pinned reference" $a.driftReference.threshold) "runbook" (include "streamwatch.runbookUrl" (list $ "field-drift-from-reference"))) | nindent 6 }}
      {{- include "streamwatch.grafanaAlertRule" (dict "uid" "streamwatch-observer-incomplete" "title" "observer incomplete" "expr" (printf "max(streamwatch:observer_completeness_gap_records{namespace=%q})" .Release.Namespace) "threshold" $a.completeness.thresholdRecords "for" $a.completeness.for "summary" (printf "the observer has not counted records the passthrough read more than %v ago" $a.completeness.settle) "runbook" (include "streamwatch.runbookUrl" (list $ "observer-incomplete"))) | nindent 6 }}
{{- end }}

{{/* One dashboard of files/grafana/dashboards with the alert thresholds and the Spark jobs' Pushgateway
     job names filled in (the same values as the alert rules and the jobs' env vars): the one source of
     the bundled Grafana's dashboards and of the sidecar ConfigMaps (templates/monitoring). Call with
     (list $ path). */}}
{{- define "streamwatch.dashboard" -}}
{{- $root := index . 0 }}
{{- $root.Files.Get (index . 1) | replace "\"__SLA_THRESHOLD_MS__\"" (toString $root.Values.alerts.slaMiss.thresholdMs) | replace "\"__LAG_THRESHOLD__\"" (toString $root.Values.alerts.lag.thresholdOffsets) | replace "\"__LAG_SECONDS_THRESHOLD__\"" (toString $root.Values.alerts.lagSeconds.thresholdSeconds) | replace "\"__DRIFT_THRESHOLD__\"" (toString $root.Values.alerts.drift.threshold) | replace "\"__DRIFT_REFERENCE_THRESHOLD__\"" (toString $root.Values.alerts.driftReference.threshold) | replace "\"__COMPLETENESS_THRESHOLD__\"" (toString $root.Values.alerts.completeness.thresholdRecords) | replace "__VISITS_WRITER_JOB__" (include "streamwatch.visitsWriterPushJob" $root) | replace "__PASSTHROUGH_JOB__" (include "streamwatch.passthroughPushJob" $root) }}
{{- end }}
