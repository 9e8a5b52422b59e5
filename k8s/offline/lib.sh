# Shared by the scripts in k8s/offline/: pinned versions, the cache layout, logging and failure.
# Everything this directory builds comes from the package registries (Go module proxy, Debian, Maven) and
# is cached under $SW_KIND_CACHE, one directory per pinned version, so a second run rebuilds nothing.
# shellcheck shell=bash

KUBE_VERSION=v1.34.4            # k8s.io/kubernetes; its staging modules are v0.34.4
KIND_VERSION=v0.33.0            # sigs.k8s.io/kind
COREDNS_VERSION=v1.15.0         # github.com/coredns/coredns
LOCAL_PATH_VERSION=v0.0.30      # github.com/rancher/local-path-provisioner
ETCD_VERSION=v3.6.5             # go.etcd.io/etcd/server/v3: the version kubeadm of KUBE_VERSION deploys
CRICTL_VERSION=v1.34.0          # sigs.k8s.io/cri-tools (kind loads images and reads them with crictl)
DEBIAN_SUITE=bookworm

SW_CACHE=${STREAMWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch}
SW_KIND_CACHE=$SW_CACHE/kind
# Keyed by every pinned version: a changed pin builds a fresh directory (the Go build cache keeps it quick).
TOOLS_DIR=$SW_KIND_CACHE/tools-$KUBE_VERSION-$(printf '%s ' "$KUBE_VERSION" "$KIND_VERSION" "$COREDNS_VERSION" \
  "$LOCAL_PATH_VERSION" "$ETCD_VERSION" "$CRICTL_VERSION" | sha256sum | cut -c1-10)
# The kind sandbox (sandbox.sh): its network namespace and its state (short: unix socket paths are limited
# to 107 bytes). The cluster's kubeconfig is kept there too, never in the user's ~/.kube/config.
SW_NETNS=${SW_NETNS:-streamwatch-kind}
SW_SANDBOX_STATE=${SW_SANDBOX_STATE:-/tmp/swkind}
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$SW_CACHE/go/mod}
export GOCACHE=${GOCACHE_OVERRIDE:-$SW_CACHE/go/build}
export GOFLAGS=-buildvcs=false
export CGO_ENABLED=0

log() { printf '%s kind-offline: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# fail WHAT: one line naming the prerequisite that could not be had, then a non-zero exit.
fail() { printf 'kind-offline: error: %s\n' "$*" >&2; exit 1; }

# timed LABEL CMD...: run CMD, print how long it took (builds here take minutes; silence looks like a hang).
timed() {
  local label=$1 start; shift
  start=$(date +%s)
  log "$label ..."
  "$@" || fail "$label failed (exit $?)"
  log "$label done in $(( $(date +%s) - start ))s"
}

# The Debian mirror this machine's apt uses (debootstrap and the images' apt-get take the same one).
debian_mirror() {
  local uri
  uri=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -oE 'https?://[^ ]+' | head -1 || true)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# require_free_disk GIB PATH: refuse to start a build that would fill the disk halfway through.
require_free_disk() {
  local need=$1 path=$2 have
  mkdir -p "$path"
  have=$(df -BG --output=avail "$path" | tail -1 | tr -dc 0-9)
  [ "$have" -ge "$need" ] || fail "not enough free disk under $path: ${have} GiB free, ${need} GiB needed"
}
