{{/* Volume size changes that Kubernetes refuses, refused at render time instead, before Helm applies
     anything: otherwise an upgrade fails halfway, with some objects updated and the volume not.
     Each check reads the live object with `lookup`, which returns nothing under `helm template`, on a
     first install and for an object that does not exist yet: those render as usual. README, "Volume
     sizes", says how to resize by hand. */}}

{{/* A storage quantity in bytes, as a number in text ("2Gi", "2048Mi", "1.5G", "1073741824"), so that
     sizes written differently but equal compare equal. */}}
{{- define "streamwatch.quantityBytes" -}}
{{- $q := toString . | trim }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $suffix := trimPrefix $number $q }}
{{- $units := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 }}
{{- if or (not $number) (not (hasKey $units $suffix)) }}
{{- fail (printf "%q is not a storage size such as 2Gi" $q) }}
{{- end }}
{{- mulf (float64 $number) (index $units $suffix) }}
{{- end }}

{{/* Refuse a new size for an existing StatefulSet's volume claim template: Kubernetes forbids that
     update ("updates to statefulset spec for fields other than ... are forbidden"). Call with
     (dict "live" (lookup of the StatefulSet) "claim" templateName "size" newSize "value" valuesKey). */}}
{{- define "streamwatch.refuseClaimTemplateResize" -}}
{{- range $template := dig "spec" "volumeClaimTemplates" (list) .live }}
{{- if eq (dig "metadata" "name" "" $template) $.claim }}
{{- $was := dig "spec" "resources" "requests" "storage" "" $template }}
{{- if and $was (ne (include "streamwatch.quantityBytes" $was) (include "streamwatch.quantityBytes" $.size)) }}
{{- fail (printf "%s cannot change from %s to %s on an installed release, because Kubernetes never changes the volume size of an existing StatefulSet: set it back to %s (README, \"Volume sizes\", shows how to grow the volume by hand)." $.value $was $.size $was) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Refuse a new size for an existing PersistentVolumeClaim that Kubernetes would refuse: any shrink,
     and a growth unless the claim's storage class allows volume expansion (allowVolumeExpansion: true;
     a claim without a class, bound to a volume made by hand, cannot grow). Call with (dict "live"
     (lookup of the claim) "size" newSize "value" valuesKey). The claim's StorageClass is looked up
     only when the size grows, so an unchanged release never reads a cluster-scoped object; a caller
     that already holds it may pass it as "storageClass". */}}
{{- define "streamwatch.refuseClaimResize" -}}
{{- $was := dig "spec" "resources" "requests" "storage" "" .live }}
{{- if $was }}
{{- $old := include "streamwatch.quantityBytes" $was | float64 }}
{{- $new := include "streamwatch.quantityBytes" .size | float64 }}
{{- if lt $new $old }}
{{- fail (printf "%s cannot shrink from %s to %s, because Kubernetes never shrinks a volume claim: set it back to %s." .value $was .size $was) }}
{{- else if gt $new $old }}
{{- $class := dig "spec" "storageClassName" "" .live }}
{{- $expandable := false }}
{{- if $class }}
{{- $storageClass := .storageClass }}
{{- if not (hasKey . "storageClass") }}
{{- $storageClass = lookup "storage.k8s.io/v1" "StorageClass" "" $class }}
{{- end }}
{{- $expandable = dig "allowVolumeExpansion" false $storageClass }}
{{- end }}
{{- if not $expandable }}
{{- fail (printf "%s cannot grow from %s to %s, because the claim's storage class %q does not allow volume expansion (allowVolumeExpansion): set it back to %s (README, \"Volume sizes\")." .value $was .size $class $was) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
