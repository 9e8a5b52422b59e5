#!/usr/bin/env bash
# Resolves a real Elasticsearch 8 node for the tests from Maven Central and unpacks it into the cache:
# Elastic's own integration-test distribution (org.elasticsearch.distribution.integ-test-zip), the
# server with the transport-netty4, x-pack-core (licence, templates) and x-pack-security (basic auth)
# modules. No JDK inside: it runs on the machine's Java 17. Idempotent; prints where it went.
# 8.19.3 (the chart's image tag) is not published as this zip; 8.19.4 is the nearest patch release.
set -euo pipefail

ES_VERSION="${ES_VERSION:-8.19.4}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch"
HOME_DIR="$CACHE/elasticsearch-$ES_VERSION"

if [ -x "$HOME_DIR/bin/elasticsearch" ]; then
  echo "elasticsearch $ES_VERSION: ready in $HOME_DIR"
  exit 0
fi
mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.elasticsearch-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "elasticsearch $ES_VERSION: resolving org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip (~105 MB) from Maven Central"
mvn -B -q -Dstyle.color=never dependency:copy \
  -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
  -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'   # -q still prints colour resets
echo "elasticsearch $ES_VERSION: unpacking"
python3 -m zipfile -e "$tmp/elasticsearch-$ES_VERSION.zip" "$tmp"   # no unzip needed
chmod +x "$tmp/elasticsearch-$ES_VERSION"/bin/*   # zipfile drops the mode bits
rm -rf "$HOME_DIR"
mv "$tmp/elasticsearch-$ES_VERSION" "$HOME_DIR"
echo "elasticsearch $ES_VERSION: ready in $HOME_DIR (modules: $(ls "$HOME_DIR/modules" | tr '\n' ' '))"
