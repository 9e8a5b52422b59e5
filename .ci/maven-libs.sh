#!/usr/bin/env bash
# Resolves Maven artifacts with their runtime dependencies from Maven Central into a cache directory
# outside the repository, ahead of time (never at query start). Used for Apache Kafka's broker (the
# local runtime in dev/, `make demo`) and for Spark's JVM connectors (spark-sql-kafka, delta-spark: the jobs' `jvm`
# connector, given to Spark as `spark.jars`).
#
#   bash .ci/maven-libs.sh [--provided DIR] [--exclude GROUP:ARTIFACT]... NAME GROUP:ARTIFACT:VERSION...
#
# Jars go to ${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch/NAME/libs. With --provided DIR, a resolved jar
# whose artifact (its file name without the version) is already in DIR is dropped: for the Spark
# connectors DIR is pyspark's own jars directory, so spark-*, scala-library, the Hadoop client... are not
# shipped twice (two copies of a class on the classpath, of different versions). With --exclude, that
# artifact is left out of every dependency's tree (e.g. the AWS SDK's 600 MB bundle, for the few modules
# hadoop-aws uses, named instead). Idempotent: a cache
# resolved from the same pom and the same provided jars is kept.
set -euo pipefail

provided=""
exclusions=""
while [ $# -gt 0 ]; do
  case "$1" in
    --provided) provided="$2"; shift 2 ;;
    --exclude)
      IFS=: read -r group artifact <<<"$2"
      exclusions+="
        <exclusion><groupId>$group</groupId><artifactId>$artifact</artifactId></exclusion>"
      shift 2 ;;
    *) break ;;
  esac
done
if [ $# -lt 2 ]; then
  echo "usage: $0 [--provided DIR] [--exclude GROUP:ARTIFACT]... NAME GROUP:ARTIFACT:VERSION..." >&2
  exit 2
fi
name="$1"
shift
libs="${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch/$name/libs"

dependencies=""
for coordinate in "$@"; do
  IFS=: read -r group artifact version <<<"$coordinate"
  if [ -z "$group" ] || [ -z "$artifact" ] || [ -z "$version" ]; then
    echo "$name: '$coordinate' is not GROUP:ARTIFACT:VERSION" >&2
    exit 2
  fi
  dependencies+="
    <dependency>
      <groupId>$group</groupId>
      <artifactId>$artifact</artifactId>
      <version>$version</version>${exclusions:+
      <exclusions>$exclusions
      </exclusions>}
    </dependency>"
done
pom="<project xmlns=\"http://maven.apache.org/POM/4.0.0\">
  <modelVersion>4.0.0</modelVersion>
  <groupId>streamwatch</groupId>
  <artifactId>$name</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>$dependencies
  </dependencies>
</project>"

# The artifact name of a jar file: kafka-clients-4.1.0.jar -> kafka-clients.
artifact_of() { local base="${1##*/}"; printf '%s\n' "${base%%-[0-9]*}"; }
provided_names=""
if [ -n "$provided" ]; then
  [ -d "$provided" ] || { echo "$name: --provided directory $provided does not exist" >&2; exit 2; }
  provided_names=$(for jar in "$provided"/*.jar; do artifact_of "$jar"; done | sort -u)
fi
digest=$(printf '%s\n%s' "$pom" "$provided_names" | sha256sum | cut -d' ' -f1)
marker="$libs/.resolved"

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$digest" ]; then
  echo "$name: $(find "$libs" -name '*.jar' | wc -l) jars already in $libs"
  exit 0
fi
command -v mvn >/dev/null 2>&1 || { echo "$name: mvn not found (apt-get install maven)" >&2; exit 1; }

echo "$name: resolving $* and their dependencies from Maven Central"
work=$(mktemp -d)
trap 'rm -rf "$work" "$libs.tmp"' EXIT
printf '%s\n' "$pom" >"$work/pom.xml"
rm -rf "$libs.tmp"
mkdir -p "$libs.tmp"
# Debian's Maven writes colour resets even with -q -B and style.color=never: stripped here.
mvn -q -B -Dstyle.color=never -f "$work/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$libs.tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
if [ -n "$provided" ]; then
  dropped=0
  for jar in "$libs.tmp"/*.jar; do
    if grep -qxF "$(artifact_of "$jar")" <<<"$provided_names"; then
      rm -f "$jar"
      dropped=$((dropped + 1))
    fi
  done
  echo "$name: dropped $dropped jars that $provided already ships"
fi
echo "$digest" >"$libs.tmp/.resolved"
rm -rf "$libs"
mv "$libs.tmp" "$libs"
echo "$name: $(find "$libs" -name '*.jar' | wc -l) jars in $libs"
