#!/usr/bin/env bash
# Builds the Kubernetes binaries and the cluster add-ons that kind needs, from the Go module proxy, at the
# pinned versions in lib.sh: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
# kubeadm, kubectl, kind, etcd, CoreDNS, crictl, local-path-provisioner, and the pause binary (C, from the
# kubernetes module). Output: $TOOLS_DIR/bin. Each binary is built once; a second run returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

bin=$TOOLS_DIR/bin
KUBE_COMMANDS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubeadm kubectl"
ALL="$KUBE_COMMANDS kind etcd coredns crictl local-path-provisioner pause"

missing() { local b; for b in "$@"; do [ -x "$bin/$b" ] || return 0; done; return 1; }
# One build at a time: `make test` starts one in the background when the session begins, and the kind
# fixture's own call waits here for it rather than building the same binaries twice.
mkdir -p "$SW_KIND_CACHE"
exec 9>"$SW_KIND_CACHE/build-tools.lock"
if ! flock -n 9; then
  log "another build-tools.sh is building; waiting for it"
  flock 9
fi
if ! missing $ALL; then
  log "tools cached in $bin"
  exit 0
fi
command -v go >/dev/null || fail "go is not installed (needed to build Kubernetes from the Go module proxy)"
command -v gcc >/dev/null || fail "gcc is not installed (needed to build the pause binary)"
require_free_disk 8 "$SW_CACHE"
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# module_with_published_siblings DIR MODULE VERSION SIBLING_VERSION PACKAGE...: a module of our own that
# requires MODULE and replaces each of its sibling modules (which MODULE's go.mod points at local
# directories, absent from a module download) with their published SIBLING_VERSION; `go get` of the
# packages to build records their checksums. Kubernetes (./staging, v0.x) and etcd (../api, same
# version) are both built this way.
module_with_published_siblings() {
  local dir=$1 module=$2 version=$3 sibling_version=$4; shift 4
  mkdir -p "$dir"
  (cd "$dir" && go mod init streamwatch.local/build >/dev/null 2>&1) || return 1
  local gomod
  gomod=$(cd "$dir" && go mod download -json "$module@$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  [ -n "$gomod" ] || return 1
  {
    echo "require $module $version"
    grep -E '^\s*(replace\s+)?[a-z0-9./-]+ => \.\.?/' "$gomod" | grep -v FORBIDDEN \
      | sed -E 's/^\s*(replace\s+)?//' | awk -v v="$sibling_version" '{print "replace " $1 " => " $1 " " v}'
  } >>"$dir/go.mod"
  local pkg pkgs=()
  for pkg in "$@"; do pkgs+=("$pkg@$version"); done
  (cd "$dir" && go get "${pkgs[@]}" >"$dir/go-get.log" 2>&1) || { tail -20 "$dir/go-get.log" >&2; return 1; }
}

# build_in DIR LDFLAGS PACKAGE...: go build into $bin, quiet unless it fails.
build_in() {
  local dir=$1 ldflags=$2; shift 2
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/" "$@" >"$dir/build.log" 2>&1) \
    || { tail -30 "$dir/build.log" >&2; return 1; }
}

kube() {
  local minor ldflags cmd pkgs=()
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  for cmd in $KUBE_COMMANDS; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
  module_with_published_siblings "$work/kube" k8s.io/kubernetes "$KUBE_VERSION" "v0${KUBE_VERSION#v1}" "${pkgs[@]}"
  # Without the version stamps the binaries say v0.0.0-master, which kubeadm and kubectl refuse.
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  build_in "$work/kube" "$ldflags" "${pkgs[@]}"
}

etcd() {
  module_with_published_siblings "$work/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" \
    go.etcd.io/etcd/server/v3
  build_in "$work/etcd" "-s -w" go.etcd.io/etcd/server/v3
  mv "$bin/server" "$bin/etcd"   # go names the main package of .../server/v3 "server"
}

# go_install MODULE@VERSION: a tool whose go.mod has no replace directives installs directly.
go_install() { GOBIN=$bin go install -trimpath -ldflags "-s -w" "$@"; }

pause() {
  local src
  src=$GOMODCACHE/k8s.io/kubernetes@$KUBE_VERSION/build/pause/linux/pause.c
  [ -f "$src" ] || (cd "$work" && go mod download "k8s.io/kubernetes@$KUBE_VERSION") || return 1
  gcc -Os -Wall -Werror -static -DVERSION="$KUBE_VERSION-streamwatch" -o "$bin/pause" "$src"
}

missing $KUBE_COMMANDS && timed "building $KUBE_COMMANDS $KUBE_VERSION (cold: about 15 min on 2 cores)" kube
missing kind && timed "building kind $KIND_VERSION" go_install "sigs.k8s.io/kind@$KIND_VERSION"
missing etcd && timed "building etcd $ETCD_VERSION" etcd
missing coredns && timed "building CoreDNS $COREDNS_VERSION" go_install "github.com/coredns/coredns@$COREDNS_VERSION"
missing crictl && timed "building crictl $CRICTL_VERSION" go_install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
missing local-path-provisioner && timed "building local-path-provisioner $LOCAL_PATH_VERSION" \
  go_install "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
missing pause && timed "building pause" pause
"$bin/kubectl" version --client >/dev/null || fail "the built kubectl does not run"
log "tools ready in $bin: $(ls "$bin" | tr '\n' ' ')"
