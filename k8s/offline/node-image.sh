#!/usr/bin/env bash
# Makes the kind node image offline: `kind build node-image` cannot work here, since it pulls a base image
# and the control-plane images. Instead:
#   1. a Debian root (debootstrap) with systemd, containerd, runc, CNI plugins and jq from Debian;
#   2. kind's own base files (entrypoint, systemd units, containerd config) from the kind module;
#   3. the binaries build-tools.sh made; the bridge CNI with pod-network in kindnetd's place (a pod range
#      per node and routes between nodes; kindnetd is not to be had); a default local-path StorageClass;
#      runc behind runc-nocapres (see that file for why);
#   4. every image kubeadm and the add-ons need (kube-apiserver, controller-manager, scheduler, kube-proxy,
#      etcd, CoreDNS, pause, local-path-provisioner and its helper), made from those binaries and put into
#      the node's containerd content store, so `kind create cluster` pulls nothing;
#   5. `docker import` into the engine DOCKER_HOST names. Prints the image reference on stdout.
# Cached: the image is tagged by a hash of its inputs; an existing tag is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

DOCKER=${DOCKER:-/usr/bin/docker}
bin=$TOOLS_DIR/bin
kind_module=$GOMODCACHE/sigs.k8s.io/kind@$KIND_VERSION
NODE_PACKAGES=systemd,dbus,containerd,runc,containernetworking-plugins,iptables,conntrack,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,ca-certificates,curl,jq,procps,bash,e2fsprogs

inputs_hash() {
  { printf '%s\n' "$TOOLS_DIR" "$NODE_PACKAGES"; cat "$here/lib.sh" "$0" "$here"/node/*; } | sha256sum | cut -c1-12
}
NODE_IMAGE=${NODE_IMAGE:-streamwatch-kind/node:$KUBE_VERSION-$(inputs_hash)}
if "$DOCKER" image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  log "node image $NODE_IMAGE exists"
  echo "$NODE_IMAGE"
  exit 0
fi
for tool in debootstrap containerd ctr jq; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (make deps installs it)"
done
"$DOCKER" version >/dev/null 2>&1 || fail "no Docker engine answers at ${DOCKER_HOST:-the default socket}"
[ -x "$bin/kubeadm" ] || fail "Kubernetes binaries missing in $bin: run k8s/offline/build-tools.sh"
[ -d "$kind_module/images/base/files" ] || (cd /tmp && go mod download "sigs.k8s.io/kind@$KIND_VERSION") \
  || fail "the kind module $KIND_VERSION could not be downloaded from the Go module proxy"
require_free_disk 6 "$SW_KIND_CACHE"

work=$(mktemp -d "$SW_KIND_CACHE/node-build.XXXXXX")
containerd_pid=""
cleanup() {
  [ -z "$containerd_pid" ] || kill "$containerd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/root

# --- 1. the Debian root, cached as a tarball (debootstrap is the slow part) -------------------------
rootfs_tar=$SW_KIND_CACHE/node-rootfs-$DEBIAN_SUITE-$(printf '%s' "$NODE_PACKAGES" | sha256sum | cut -c1-10).tar
make_rootfs() {
  local tmp=$work/debootstrap
  debootstrap --variant=minbase --include="$NODE_PACKAGES" "$DEBIAN_SUITE" "$tmp" "$(debian_mirror)" \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; return 1; }
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* "$tmp"/usr/share/doc "$tmp"/usr/share/man
  tar -C "$tmp" -cf "$rootfs_tar.part" . && mv "$rootfs_tar.part" "$rootfs_tar"
  rm -rf "$tmp"
}
[ -f "$rootfs_tar" ] || timed "debootstrap of the node's Debian root ($NODE_PACKAGES)" make_rootfs
mkdir -p "$root" && tar -C "$root" -xf "$rootfs_tar"

# --- 2. kind's base files, and what kind's base Dockerfile does to systemd --------------------------
base_files() {
  local files=$kind_module/images/base/files
  cp -r "$files/etc/." "$root/etc/"
  mkdir -p "$root/kind/bin" "$root/usr/local/bin" "$root/LICENSES" "$root/etc/kubernetes/manifests"
  cp "$files"/kind/bin/* "$root/kind/bin/"
  cp "$files"/usr/local/bin/* "$root/usr/local/bin/"
  cp "$files"/LICENSES/* "$root/LICENSES/"
  chmod -R u+w "$root/etc" "$root/kind" "$root/usr/local/bin"
  chmod 0755 "$root"/kind/bin/* "$root"/usr/local/bin/*
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
    "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
  systemctl --root="$root" enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  systemctl --root="$root" mask systemd-binfmt.service >/dev/null 2>&1
}
timed "kind $KIND_VERSION base files" base_files

# --- 3. binaries, runtime, CNI, storage -------------------------------------------------------------
node_binaries() {
  install -m 0755 "$bin/kubeadm" "$bin/kubelet" "$bin/kubectl" "$root/usr/bin/"
  install -m 0755 "$bin/crictl" "$root/usr/local/bin/"
  # kind's containerd unit starts /usr/local/bin/containerd; Debian installs it in /usr/bin.
  ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
  ln -sf /usr/bin/ctr "$root/usr/local/bin/ctr"
  install -m 0755 "$here/node/runc-nocapres" "$root/usr/local/sbin/runc-nocapres"
  # Pods' runc goes through the front too: every pod sandbox asks for CAP_SYS_RESOURCE.
  sed -i '/\[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options\]/a\    BinaryName = "/usr/local/sbin/runc-nocapres"' \
    "$root/etc/containerd/config.toml"
  ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
  mkdir -p "$root/opt/cni/bin" "$root/etc/cni/net.d"
  cp -a "$root"/usr/lib/cni/. "$root/opt/cni/bin/"
  # No CNI configuration yet: pod-network writes it for the node's pod range, as kindnetd would.
  install -m 0644 "$here/node/10-bridge.conflist.in" "$root/etc/cni/10-bridge.conflist.in"
  install -m 0755 "$here/node/pod-network" "$root/usr/local/bin/pod-network"
  install -m 0644 "$here/node/pod-network.service" "$root/etc/systemd/system/pod-network.service"
  systemctl --root="$root" enable pod-network.service >/dev/null 2>&1
  mkdir -p "$root/kind/manifests"
  echo "$KUBE_VERSION" >"$root/kind/version"
}
timed "binaries, runtime front, bridge CNI" node_binaries

# --- 4. images for the node's containerd ------------------------------------------------------------
# image_from_dir DIR REF [docker import change]...: a one-layer image from a directory.
image_from_dir() {
  local dir=$1 ref=$2; shift 2
  local changes=(-c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin')
  local change; for change in "$@"; do changes+=(-c "$change"); done
  tar -C "$dir" -c . | "$DOCKER" import "${changes[@]}" - "$ref" >/dev/null
}
# binary_image BINARY REF [ENTRYPOINT json]: one static binary in /usr/local/bin.
binary_image() {
  local dir=$work/img-$1
  mkdir -p "$dir/usr/local/bin" "$dir/etc" "$dir/tmp"
  install -m 0755 "$bin/$1" "$dir/usr/local/bin/$1"
  echo "root:x:0:0:root:/root:/sbin/nologin" >"$dir/etc/passwd"
  if [ -n "${3:-}" ]; then image_from_dir "$dir" "$2" "ENTRYPOINT $3"; else image_from_dir "$dir" "$2"; fi
}
busybox_dir() {
  local dir=$work/img-helper debs=$work/debs
  mkdir -p "$debs" "$dir/bin"
  (cd "$debs" && apt-get download busybox-static >/dev/null 2>&1) || return 1
  dpkg-deb -x "$debs"/busybox-static_*.deb "$debs/x"
  install -m 0755 "$debs/x/bin/busybox" "$dir/bin/busybox"
  local applet; for applet in sh mkdir rm chmod ls cat; do ln -sf busybox "$dir/bin/$applet"; done
}
kube_proxy_dir() {
  # kube-proxy needs iptables and conntrack: the node's own Debian root, without the node's extras.
  local dir=$work/img-kube-proxy
  mkdir -p "$dir" && tar -C "$dir" -xf "$rootfs_tar"
  rm -rf "$dir/usr/lib/systemd" "$dir/usr/share/locale" "$dir/usr/bin/containerd"* "$dir/usr/sbin/runc"
  install -m 0755 "$bin/kube-proxy" "$dir/usr/local/bin/kube-proxy"
  local tool; for tool in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    install -m 0755 "$here/node/iptables-select" "$dir/usr/local/sbin/$tool"
  done
}
images() {
  local refs=() ref
  while read -r ref; do
    case "$ref" in
      */kube-proxy:*) kube_proxy_dir; image_from_dir "$work/img-kube-proxy" "$ref" ;;
      */kube-*:*) local name=${ref##*/}; binary_image "${name%%:*}" "$ref" ;;
      */etcd:*) binary_image etcd "$ref" ;;
      */coredns:*) binary_image coredns "$ref" '["/usr/local/bin/coredns"]' ;;
      */pause:*) binary_image pause "$ref" '["/usr/local/bin/pause"]' ;;
      *) fail "kubeadm asks for an image this script does not make: $ref" ;;
    esac
    refs+=("$ref")
  done < <("$bin/kubeadm" config images list --kubernetes-version "$KUBE_VERSION")
  # containerd's sandbox image is the pause kubeadm expects (kind's config names an older tag).
  local pause_ref; pause_ref=$(printf '%s\n' "${refs[@]}" | grep '/pause:')
  sed -i "s#sandbox_image = .*#sandbox_image = \"$pause_ref\"#" "$root/etc/containerd/config.toml"
  local provisioner=docker.io/streamwatch-kind/local-path-provisioner:$LOCAL_PATH_VERSION
  local helper=docker.io/streamwatch-kind/local-path-helper:busybox
  binary_image local-path-provisioner "$provisioner"
  busybox_dir && image_from_dir "$work/img-helper" "$helper"
  refs+=("$provisioner" "$helper")
  sed -e "s#@PROVISIONER_IMAGE@#$provisioner#g" -e "s#@HELPER_IMAGE@#$helper#g" \
    "$here/node/local-path-storage.yaml.in" >"$root/kind/manifests/default-storage.yaml"
  "$DOCKER" save "${refs[@]}" -o "$work/images.tar"
  "$DOCKER" rmi "${refs[@]}" >/dev/null
  # A containerd of our own on the node root's store (no CRI, no network) imports them unpacked later,
  # as kind's own node build does (pinned, so the kubelet's image GC never removes them).
  local state=$work/containerd-state sock=$work/containerd.sock
  mkdir -p "$state"
  printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' >"$work/containerd.toml"
  containerd --config "$work/containerd.toml" --root "$root/var/lib/containerd" --state "$state" \
    --address "$sock" >"$work/containerd.log" 2>&1 &
  containerd_pid=$!
  local i; for i in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.2; done
  ctr --address "$sock" --namespace k8s.io images import --label=io.cri-containerd.pinned=pinned \
    --all-platforms --no-unpack --digests "$work/images.tar" >/dev/null
  ctr --address "$sock" --namespace k8s.io images list -q | sed 's/^/  /' >&2
  kill "$containerd_pid"; wait "$containerd_pid" 2>/dev/null || true; containerd_pid=""
}
timed "control-plane and add-on images into the node's containerd" images

# --- 5. the node image ------------------------------------------------------------------------------
import_node() {
  # No STOPSIGNAL (docker import cannot set it): kind removes its nodes with `docker rm -f`.
  tar -C "$root" -c . | "$DOCKER" import -c 'ENV container=docker' \
    -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' - "$NODE_IMAGE" >/dev/null
}
timed "docker import of $NODE_IMAGE" import_node
# Node images of earlier inputs would only fill the disk.
"$DOCKER" images --format '{{.Repository}}:{{.Tag}}' "${NODE_IMAGE%%:*}" | grep -vxF "$NODE_IMAGE" \
  | xargs -r "$DOCKER" rmi >/dev/null 2>&1 || true
echo "$NODE_IMAGE"
