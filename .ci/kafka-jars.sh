#!/usr/bin/env bash
# Resolves Apache Kafka's broker jars (kafka_2.13 with its dependencies: kafka-server, kafka-metadata,
# kafka-storage, kafka-raft, ...) from Maven Central into a cache directory outside the repository, for
# the test harness and `make demo` (tests/harness/kafka.py). Idempotent: a cache resolved from the same
# pom is kept.
#   KAFKA_VERSION   default 4.3.1 (what the chart's Strimzi runs)
#   KAFKA_LIBS      default ${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch/kafka-$KAFKA_VERSION/libs
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
KAFKA_LIBS="${KAFKA_LIBS:-${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch/kafka-$KAFKA_VERSION/libs}"

# log4j-slf4j-impl: the broker logs through slf4j 1.7 (as Kafka's own distribution does); this binding
# sends it to log4j2, which the harness configures (without a binding slf4j drops every line silently).
pom=$(cat <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>streamwatch</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.25.3</version>
    </dependency>
  </dependencies>
</project>
POM
)
digest=$(printf '%s' "$pom" | sha256sum | cut -d' ' -f1)
marker="$KAFKA_LIBS/.resolved"

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$digest" ]; then
  echo "kafka: $KAFKA_VERSION jars already in $KAFKA_LIBS"
  exit 0
fi
command -v mvn >/dev/null 2>&1 || { echo "kafka: mvn not found (apt-get install maven)" >&2; exit 1; }

echo "kafka: resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its dependencies from Maven Central"
work=$(mktemp -d)
trap 'rm -rf "$work" "$KAFKA_LIBS.tmp"' EXIT
printf '%s\n' "$pom" >"$work/pom.xml"
rm -rf "$KAFKA_LIBS.tmp"
mkdir -p "$KAFKA_LIBS.tmp"
# Debian's Maven writes colour resets even with -q -B and style.color=never: stripped here.
mvn -q -B -Dstyle.color=never -f "$work/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
echo "$digest" >"$KAFKA_LIBS.tmp/.resolved"
rm -rf "$KAFKA_LIBS"
mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
echo "kafka: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
