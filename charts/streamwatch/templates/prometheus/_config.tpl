{{/* prometheus.yml. Rule files are relative to it: the rules ConfigMap is mounted at rules/ beside it. */}}
{{- define "streamwatch.prometheusConfig" -}}
global:
  scrape_interval: {{ .Values.prometheus.scrapeInterval }}
  evaluation_interval: {{ .Values.prometheus.evaluationInterval }}
  external_labels:
    release: {{ .Release.Name }}
rule_files:
  - rules/*.rules.yaml
{{- /* Every target is labelled with the release's namespace, as prometheus-operator labels what a
       ServiceMonitor finds: the rules (templates/prometheus/_rules.tpl) and the dashboards' $namespace
       read the same labels either way. */}}
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
        labels: {namespace: {{ .Release.Namespace | quote }}}
  # The Spark jobs push job/instance labels of their own; keep them instead of the Pushgateway's.
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: [{{ include "streamwatch.pushgatewayUrl" . | trimPrefix "http://" | trimPrefix "https://" | quote }}]
        labels: {namespace: {{ .Release.Namespace | quote }}}
  # Every replica of every service, found through the A records of its headless "-metrics" Service.
  - job_name: streamwatch
    dns_sd_configs:
      {{- range $component := include "streamwatch.scrapedComponents" . | fromYamlArray }}
      - names: [{{ printf "%s.%s.svc" (include "streamwatch.componentName" (list $ (printf "%s-metrics" $component))) $.Release.Namespace | quote }}]
        type: A
        port: {{ include "streamwatch.metricsPort" (list $ $component) }}
        refresh_interval: 15s
      {{- end }}
    relabel_configs:
      - source_labels: [__meta_dns_name]
        regex: {{ printf `%s-(.+)-metrics\..*` (include "streamwatch.fullname" .) | quote }}
        target_label: component
      - target_label: namespace
        replacement: {{ .Release.Namespace | quote }}
{{- end }}

{{/* Our services that are enabled, as a YAML list: each serves /metrics and is scraped. */}}
{{- define "streamwatch.scrapedComponents" -}}
{{- $out := list }}
{{- range $c := list "generator" "visits-writer" "passthrough" "observer" "profile-publisher" }}
{{- if (index $.Values (include "streamwatch.valuesKey" $c)).enabled }}{{ $out = append $out $c }}{{ end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* Port serving /metrics of a component: the profile publisher's own port, the ops port otherwise. */}}
{{- define "streamwatch.metricsPort" -}}
{{- $root := index . 0 }}
{{- if eq (index . 1) "profile-publisher" }}{{ $root.Values.profilePublisher.port }}{{ else }}{{ $root.Values.opsPort }}{{ end }}
{{- end }}

{{/* One rule file of files/rules, rendered with .Values.alerts: the one source of the bundled Prometheus'
     rules ConfigMap and of the PrometheusRule (templates/monitoring). Call with (list $ path). */}}
{{- define "streamwatch.ruleFile" -}}
{{- $root := index . 0 }}
{{- tpl ($root.Files.Get (index . 1)) $root }}
{{- end }}
