{{/* Custom resources the chart renders only when the API server serves them. A release that needs one
     the cluster lacks fails with one sentence naming what to install, instead of Kubernetes' raw
     "no matches for kind". The check runs only against a live API server (install, upgrade, a server
     dry run): under `helm template` and `helm lint` there is none to ask (lookup returns nothing), and
     their built-in API list knows no custom resource, so an offline render is not refused. */}}

{{- /* streamwatch.requireApis (list $ "the values that need them" "what to install" "group/version/Kind"...) */}}
{{- define "streamwatch.requireApis" -}}
{{- $root := index . 0 }}
{{- if lookup "v1" "Namespace" "" "kube-system" }}
{{- $missing := list }}
{{- range $api := slice . 3 }}
{{- if not ($root.Capabilities.APIVersions.Has $api) }}{{- $missing = append $missing $api }}{{- end }}
{{- end }}
{{- if $missing }}
{{- fail (printf "%s needs %s, which this cluster does not serve: install %s first" (index . 1) (join ", " $missing) (index . 2)) }}
{{- end }}
{{- end }}
{{- end }}
