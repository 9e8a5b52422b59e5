#!/usr/bin/env bash
# Fetches the prometheus-operator CRDs (ServiceMonitor, PrometheusRule) the chart's monitoring options
# are validated against (tests/chart/test_monitoring.py). GitHub is out of reach from CI, so they come
# from the Go module proxy: the module's zip carries example/prometheus-operator-crd/*.yaml. Pinned by
# version and by the zip's sha256; idempotent (a complete cache is kept).
#
# CRDs go to ${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch/prometheus-operator-crds-$VERSION/.
set -euo pipefail

VERSION="v0.85.0"
SHA256="0bdb88ed823d0f2e86cf909638439b6ad1da744a228172c7411d9987527dc5d1"
MODULE="github.com/prometheus-operator/prometheus-operator"
CRDS=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)

target="${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch/prometheus-operator-crds-$VERSION"
complete=1
for crd in "${CRDS[@]}"; do [ -s "$target/$crd" ] || complete=0; done
if [ "$complete" = 1 ]; then exit 0; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 3 -o "$tmp/module.zip" "https://proxy.golang.org/$MODULE/@v/$VERSION.zip"
echo "$SHA256  $tmp/module.zip" | sha256sum --check --quiet
mkdir -p "$target"
# python3 rather than unzip, which the CI image need not have; each file lands whole or not at all.
python3 - "$tmp/module.zip" "$MODULE@$VERSION/example/prometheus-operator-crd" "$target" "${CRDS[@]}" <<'PY'
import os, sys, zipfile
archive, folder, target, *crds = sys.argv[1:]
with zipfile.ZipFile(archive) as z:
    for crd in crds:
        partial = os.path.join(target, crd + ".part")
        with z.open(f"{folder}/{crd}") as src, open(partial, "wb") as dst:
            dst.write(src.read())
        os.replace(partial, os.path.join(target, crd))
PY
