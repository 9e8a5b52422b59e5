{{/* Selectors that keep the alert rules of several releases apart when they share one Prometheus (the
     PrometheusRule of each release, or rule files loaded side by side). Every rule reads only its own
     release's series and keeps `namespace` in what it aggregates, so each release is judged by its own
     thresholds and its alerts name their namespace. One release per namespace: the series of two
     releases in one namespace differ by no label the rules can rely on. */}}

{{/* Label matcher of this release's scraped series (our services, the Pushgateway target): the release's
     namespace, or no namespace label at all (a Prometheus that adds none, e.g. one loading these rule
     files with plain static targets, serves one release). */}}
{{- define "streamwatch.releaseMatcher" -}}
namespace=~"{{ .Release.Namespace }}|"
{{- end }}

{{/* This release's series of a Spark job's Pushgateway group, as a PromQL expression: the group's job and
     instance (streamwatch.*PushInstance: "<namespace>/<deployment>" unless set), whichever Pushgateway
     holds it and wherever that one runs, so a shared Pushgateway's namespace label does not matter; or,
     in a Prometheus that adds no namespace label (one release), every group of the job. Call with
     (list $ metric "visitsWriter"|"passthrough" [suffix]), suffix e.g. "offset 3m" after each selector. */}}
{{- define "streamwatch.pushedSeries" -}}
{{- $root := index . 0 }}
{{- $metric := index . 1 }}
{{- $job := include (printf "streamwatch.%sPushJob" (index . 2)) $root }}
{{- $instance := include (printf "streamwatch.%sPushInstance" (index . 2)) $root }}
{{- $suffix := "" }}
{{- if gt (len .) 3 }}{{ $suffix = printf " %s" (index . 3) }}{{ end }}
{{- printf "(%s{job=%q, instance=%q}%s or %s{job=%q, namespace=\"\"}%s)" $metric $job $instance $suffix $metric $job $suffix }}
{{- end }}

{{/* The runbook_url annotation of an alert: alerts.runbookUrl and the alert's section of the README
     ("Alerts and what to do"). Call with (list $ anchor). */}}
{{- define "streamwatch.runbookUrl" -}}
{{- printf "%s#%s" (index . 0).Values.alerts.runbookUrl (index . 1) }}
{{- end }}

{{/* A lag alert's expression per Spark job (spark_job): each watched job that sets its own threshold
     (observer.watchedJobs[].alerts.<key>) is held to it, every other job to the default. One series per
     job and source partition; `max by` drops the observer replica's labels, so a partition moved to
     another replica by a rebalance keeps its `for` clock. Call with (list $ metric key default). */}}
{{- define "streamwatch.lagByJob" -}}
{{- $root := index . 0 }}
{{- $metric := index . 1 }}
{{- $key := index . 2 }}
{{- $release := include "streamwatch.releaseMatcher" $root }}
{{- $own := list }}
{{- range $root.Values.observer.watchedJobs }}
{{- if hasKey (.alerts | default dict) $key }}{{ $own = append $own . }}{{ end }}
{{- end }}
{{- $others := "" }}
{{- range $own }}{{ $others = printf "%s, spark_job!=%q" $others .name }}{{ end }}
{{- printf "max by (namespace, spark_job, topic, partition) (%s{%s%s}) > %v" $metric $release $others (index . 3) }}
{{- range $own }}
{{- printf " or max by (namespace, spark_job, topic, partition) (%s{%s, spark_job=%q}) > %v" $metric $release .name (index .alerts $key) }}
{{- end }}
{{- end }}
