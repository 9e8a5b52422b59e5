{{/* prometheus.yml. Rule files are relative to it: the rules ConfigMap is mounted at rules/ beside it. */}}
{{- define "streamwatch.prometheusConfig" -}}
global:
  scrape_interval: {{ .Values.prometheus.scrapeInterval }}
  evaluation_interval: {{ .Values.prometheus.evaluationInterval }}
  external_labels:
    release: {{ .Release.Name }}
rule_files:
  - rules/*.rules.yaml
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
  # The Spark jobs push job/instance labels of their own; keep them instead of the Pushgateway's.
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: [{{ include "streamwatch.pushgatewayUrl" . | trimPrefix "http://" | trimPrefix "https://" | quote }}]
  # Every pod of this release with prometheus.io/* annotations, each replica scraped on its own.
  - job_name: streamwatch
    kubernetes_sd_configs:
      - role: pod
        namespaces:
          names: [{{ .Release.Namespace | quote }}]
        selectors:
          - role: pod
            label: "app.kubernetes.io/instance={{ .Release.Name }},app.kubernetes.io/part-of=streamwatch"
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        regex: "true"
        action: keep
      - source_labels: [__meta_kubernetes_pod_phase]
        regex: Running
        action: keep
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: (.+);(\d+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        regex: (.+)
        target_label: __metrics_path__
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_component]
        target_label: component
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
{{- end }}
