#!/usr/bin/env bash
# streamwatch on kind: `make up`, `make down`, `make images`, `make e2e-kind` call this script.
#   k8s/kind.sh up       check prerequisites, create the cluster, build + load images, install everything
#   k8s/kind.sh cluster  check prerequisites and create the cluster only (what `up` does first; `up`
#                        then reuses it)
#   k8s/kind.sh down     delete the cluster
#   k8s/kind.sh images   build the service images, load them into the cluster and roll the release onto them
#   k8s/kind.sh tags     print the content tag of each service image (what `images` would build)
#   k8s/kind.sh e2e      the end-to-end tests (tests/e2e_kind): they make the offline cluster of
#                        k8s/offline/README.md, install the chart with this script's `up`, and remove it
# Settings (environment; the defaults are the laptop cluster of `make up`; make test's offline cluster sets
# them, see k8s/offline/README.md):
#   KIND_CONFIG      kind cluster config                          (kind-config.yaml)
#   KIND_NODE_IMAGE  node image, overriding the config's          (the config's)
#   VALUES_FILES     space-separated chart values files           (k8s/streamwatch-kind-values.yaml)
#   STRIMZI          1: install the Strimzi operator; 0: the values bring their own Kafka   (1)
#   EXTRA_MANIFESTS  space-separated manifests applied before the chart (e.g. a plain Kafka)  (none)
#   IMAGE_ARCHIVE    a `docker save` tar holding the images `kind.sh tags` names: loaded instead of built
#   HELM_WAIT        1: `helm install --wait` (and `helm test` after it)                   (0)
#   POD_ROUTES       1: route each node's pod range through that node on every other node, for a CNI
#                    that makes no routes (the offline cluster's bridge, k8s/offline/node/pod-network)  (0)
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-streamwatch}
NAMESPACE=${NAMESPACE:-streamwatch}
RELEASE=${RELEASE:-sw}
STRIMZI_CHART=oci://quay.io/strimzi-helm/strimzi-kafka-operator
STRIMZI_VERSION=1.2.0
SERVICES=(generator visits-writer passthrough observer profile-publisher)
WAIT_SECONDS=${WAIT_SECONDS:-900}
KIND_CONFIG=${KIND_CONFIG:-kind-config.yaml}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-}
VALUES_FILES=${VALUES_FILES:-k8s/streamwatch-kind-values.yaml}
STRIMZI=${STRIMZI:-1}
EXTRA_MANIFESTS=${EXTRA_MANIFESTS:-}
IMAGE_ARCHIVE=${IMAGE_ARCHIVE:-}
HELM_WAIT=${HELM_WAIT:-0}
POD_ROUTES=${POD_ROUTES:-0}

# The time on each step says, in a log read after a failure, which step took the time.
step() { printf '\n==> %s  [%s]\n' "$*" "$(date +%T)"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# version_ge A B: true when version A >= version B (dotted numbers, leading "v" ignored).
version_ge() { [ "$(printf '%s\n%s\n' "${2#v}" "${1#v}" | sort -V | head -1)" = "${2#v}" ]; }

need() {  # need NAME MIN_VERSION VERSION_COMMAND... ; prints the found version or records what is missing
  local name=$1 min=$2; shift 2
  if ! command -v "$name" >/dev/null 2>&1; then
    missing+=("$name (>= $min) is not installed")
    return
  fi
  local version
  version=$("$@" 2>/dev/null | grep -oE 'v?[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1 || true)
  if [ -z "$version" ]; then
    missing+=("$name: could not read its version (is it working? try: $*)")
  elif ! version_ge "$version" "$min"; then
    missing+=("$name $version is too old (need >= $min)")
  else
    printf '  %-8s %s\n' "$name" "$version"
  fi
}

check_prerequisites() {
  step "checking prerequisites"
  missing=()
  need docker 20.10 docker version --format '{{.Server.Version}}'
  need kind 0.27.0 kind version
  need kubectl 1.30.0 kubectl version --client
  need helm 3.14.0 helm version --short
  if [ ${#missing[@]} -gt 0 ]; then
    printf '  missing: %s\n' "${missing[@]}" >&2
    die "install the tools above (docker engine running; https://kind.sigs.k8s.io, https://kubernetes.io/docs/tasks/tools/, https://helm.sh/docs/intro/install/) and run make up again"
  fi
}

create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    step "kind cluster $CLUSTER exists; reusing it"
  else
    step "creating kind cluster $CLUSTER ($KIND_CONFIG${KIND_NODE_IMAGE:+, node image $KIND_NODE_IMAGE})"
    # kind-config.yaml bind-mounts ./profiles into the node. Created here it belongs to you, not to root
    # (docker creates a missing one as root on Linux), so you can clear it without sudo. Either way the
    # publisher can write: the chart mounts it as a local volume, which the kubelet gives to the pod's
    # fsGroup (10001); nothing runs as root in the cluster.
    mkdir -p profiles
    kind create cluster --name "$CLUSTER" --config "$KIND_CONFIG" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} \
      --wait 180s
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null
}

# Pods on one node reach pods on another through the other node's address: on every node, a route to each
# other node's pod range (spec.podCIDR, given when the node joins). What kindnetd does; the nodes are the
# containers of the same names.
pod_routes() {
  step "routes between the nodes' pod ranges"
  local nodes="" deadline=$(( $(date +%s) + 120 )) node cidr address
  while :; do
    nodes=$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
    [ -n "$nodes" ] && ! awk 'NF < 3 {missing = 1} END {exit !missing}' <<<"$nodes" && break
    [ "$(date +%s)" -lt "$deadline" ] || die "a node has no pod range or address after 120s: $nodes"
    sleep 2
  done
  while read -r node _ _; do
    while read -r other cidr address; do
      [ "$other" = "$node" ] && continue
      docker exec "$node" ip route replace "$cidr" via "$address" </dev/null
      printf '  %s: %s via %s (%s)\n' "$node" "$cidr" "$address" "$other"
    done <<<"$nodes"
  done <<<"$nodes"
}

# image_tag SERVICE: content tag of the service's image, the first 12 hex digits of a sha256 over every
# file the Dockerfile copies for it (the workspace's pyproject files and uv.lock, the common library's
# and the service's src) and the Dockerfile itself (one for every service: a change there retags all).
# Changed code gives a new tag, so `helm upgrade` changes the pod template and Kubernetes rolls the
# pods; unchanged services keep their tag and their pods.
image_tag() {
  local svc=$1
  {
    printf '%s\n' pyproject.toml uv.lock services/*/pyproject.toml native/*/pyproject.toml services/Dockerfile
    # The observer installs the compiled classifier's wheel, built from these sources.
    if [ "$svc" = observer ]; then
      find native/visit_classifier/src native/visit_classifier/Cargo.toml native/visit_classifier/Cargo.lock -type f
    fi
    # The Spark images also copy spark-jars/ (the jvm connector's jars, when make spark-jars put them there).
    case $svc in passthrough | visits-writer) find spark-jars -type f ;; esac
    find services/common/src "services/$svc/src" -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*/.mypy_cache/*' ! -path '*/.pytest_cache/*'
  } | LC_ALL=C sort -u | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -c1-12
}

# image_ref SERVICE: the image reference given to kind and to the chart (image.overrides.SERVICE).
image_ref() { printf 'streamwatch-%s:%s' "$1" "$(image_tag "$1")"; }

# The chart values naming every image by its content tag.
image_values() {
  IMAGE_VALUES=()
  for svc in "${SERVICES[@]}"; do
    IMAGE_VALUES+=(--set "image.overrides.$svc=$(image_ref "$svc")")
  done
}

# The observer image installs native/visit_classifier (Rust) as a wheel built here with the host's cargo,
# so the image build needs no Rust toolchain (services/observer/README.md, "The compiled classifier").
# Every image's build context holds the wheel: it is built once, before the first image, and the same way
# the tests build it (reproducibly, so an unchanged wheel leaves every image layer cached).
build_classifier_wheel() {
  step "building the observer's compiled classifier wheel (cargo)"
  uv run --frozen python -m streamwatch_dev.images --classifier-wheel-only
}

build_images() {
  local ref
  if [ -n "$IMAGE_ARCHIVE" ]; then
    step "loading the images of $IMAGE_ARCHIVE into kind"
    kind load image-archive --name "$CLUSTER" "$IMAGE_ARCHIVE"
    return
  fi
  build_classifier_wheel
  for svc in "${SERVICES[@]}"; do
    ref=$(image_ref "$svc")
    step "building image $ref"
    DOCKER_BUILDKIT=1 docker build -f services/Dockerfile --build-arg "SERVICE=$svc" -t "$ref" .
  done
  for svc in "${SERVICES[@]}"; do
    ref=$(image_ref "$svc")
    step "loading $ref into kind"
    kind load docker-image --name "$CLUSTER" "$ref"
  done
}

# After `images`: point the installed release at the new tags; only Deployments whose image changed roll.
roll_release() {
  if ! helm status "$RELEASE" --namespace "$NAMESPACE" --kube-context "kind-$CLUSTER" >/dev/null 2>&1; then
    step "release $RELEASE is not installed yet; make up installs it with these images"
    return
  fi
  image_values
  step "rolling release $RELEASE onto the new image tags (other values kept)"
  # --reset-then-reuse-values: this chart's defaults, then the release's own values, then the new tags.
  helm upgrade "$RELEASE" charts/streamwatch --namespace "$NAMESPACE" --kube-context "kind-$CLUSTER" \
    --reset-then-reuse-values "${IMAGE_VALUES[@]}"
  for svc in "${SERVICES[@]}"; do
    if kubectl --context "kind-$CLUSTER" -n "$NAMESPACE" get "deployment/$RELEASE-streamwatch-$svc" >/dev/null 2>&1; then
      kubectl --context "kind-$CLUSTER" -n "$NAMESPACE" rollout status "deployment/$RELEASE-streamwatch-$svc" \
        --timeout "${WAIT_SECONDS}s"
    fi
  done
}

install_all() {
  step "namespace $NAMESPACE"
  kubectl apply -f k8s/namespace.yaml
  if [ "$STRIMZI" = 1 ]; then
    step "Strimzi operator $STRIMZI_VERSION (official chart)"
    helm upgrade --install strimzi "$STRIMZI_CHART" --version "$STRIMZI_VERSION" \
      --namespace "$NAMESPACE" -f k8s/strimzi-values.yaml --wait --timeout 10m
  fi
  local manifest values=() wait=()
  for manifest in $EXTRA_MANIFESTS; do
    step "applying $manifest"
    kubectl apply --namespace "$NAMESPACE" -f "$manifest"
  done
  for manifest in $VALUES_FILES; do values+=(-f "$manifest"); done
  [ "$HELM_WAIT" != 1 ] || wait=(--wait --timeout "${WAIT_SECONDS}s")
  step "streamwatch chart (release $RELEASE${wait:+, waiting for every pod to be ready})"
  image_values
  helm upgrade --install "$RELEASE" charts/streamwatch --namespace "$NAMESPACE" \
    "${values[@]}" "${IMAGE_VALUES[@]}" "${wait[@]}"
  if [ "$HELM_WAIT" = 1 ]; then
    step "helm test"
    # The check ends itself at tests.timeoutSeconds; helm's timeout also covers starting its pod. Its
    # lines are read apart from the verdict: a node too busy to serve a log is no failed check.
    local tested=0
    helm test "$RELEASE" --namespace "$NAMESPACE" --timeout 10m || tested=$?
    echo "POD LOGS: $RELEASE-streamwatch-test"
    kubectl -n "$NAMESPACE" logs "$RELEASE-streamwatch-test" || echo "(its logs could not be read)"
    [ "$tested" = 0 ] || die "helm test failed (exit $tested): its lines above say which check"
  fi
}

wait_ready() {
  step "waiting for every pod to be ready (up to ${WAIT_SECONDS}s)"
  # Polls are counted rather than the wall clock read: a clock that jumps (a paused machine whose clock is
  # set right on resume) must not end the wait before the pods had their time.
  local polls=$(( (WAIT_SECONDS + 4) / 5 )) line
  while :; do
    # READY column x/y for every pod of the namespace (operator, Kafka, our release). Spark's executor
    # pods are the drivers' to count (a driver is unready without one) and come and go by design.
    line=$(kubectl -n "$NAMESPACE" get pods --no-headers -l 'spark-role!=executor' 2>/dev/null | awk '
      $3 == "Completed" {next}   # a finished Job or the kept helm test pod
      {split($2, r, "/"); total++; if (r[1] == r[2] && $3 == "Running") ready++; else waiting = waiting " " $1 "(" $3 ")"}
      END {printf "%d/%d ready%s", ready, total, (waiting ? ";  waiting:" waiting : "")}')
    printf '\r  %s\033[K' "$line"
    if { [ "$STRIMZI" != 1 ] || kubectl -n "$NAMESPACE" get kafka --no-headers 2>/dev/null | grep -q .; } \
       && [[ "$line" =~ ^([0-9]+)/([0-9]+)\ ready$ ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] \
       && [ "${BASH_REMATCH[2]}" -gt 5 ]; then
      echo; break
    fi
    polls=$(( polls - 1 ))
    if [ "$polls" -le 0 ]; then
      echo
      kubectl -n "$NAMESPACE" get pods
      die "not everything became ready in ${WAIT_SECONDS}s ($line); see kubectl -n $NAMESPACE describe pod <name>"
    fi
    sleep 5
  done
}

print_access() {
  local fullname="$RELEASE-streamwatch"
  step "streamwatch is up"
  cat <<TXT
  Grafana            http://localhost:3000   user admin
                     password: kubectl -n $NAMESPACE get secret $fullname-grafana -o jsonpath='{.data.admin-password}' | base64 -d; echo
  Profile reports    http://localhost:8000   (also in ./profiles on this machine)
  Prometheus         kubectl -n $NAMESPACE port-forward svc/$fullname-prometheus 9090:9090
  Logs               kubectl -n $NAMESPACE logs deploy/$fullname-observer -f
  Scale observer     kubectl -n $NAMESPACE scale deployment/$fullname-observer --replicas=3   (6 partitions; helm upgrade keeps it)
  SLA miss on/off    helm -n $NAMESPACE upgrade $RELEASE charts/streamwatch --reuse-values --set visitsWriter.settings.simulated_latency_seconds=15   (then =0)
  End-to-end tests   make e2e-kind
  Tear down          make down
TXT
}

# The cluster alone: what `up` does first, and all that `cluster` does.
cluster() {
  check_prerequisites
  create_cluster
  [ "$POD_ROUTES" != 1 ] || pod_routes
}

case "${1:-}" in
  up)
    cluster
    build_images
    install_all
    wait_ready
    print_access
    ;;
  cluster)
    cluster
    ;;
  images)
    check_prerequisites
    build_images
    roll_release
    ;;
  tags)
    for svc in "${SERVICES[@]}"; do printf '%s\n' "$(image_ref "$svc")"; done
    ;;
  down)
    command -v kind >/dev/null 2>&1 || die "kind is not installed"
    step "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER"
    ;;
  e2e)
    step "end-to-end tests on the offline kind cluster (k8s/offline/README.md; needs root)"
    exec uv run --frozen pytest tests/e2e_kind -p no:cacheprovider -v "${@:2}"
    ;;
  *)
    die "usage: $0 up|cluster|down|images|tags|e2e"
    ;;
esac
