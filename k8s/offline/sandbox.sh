#!/usr/bin/env bash
# A Docker engine of its own, inside a network namespace this script creates, for a kind cluster on a
# machine whose network must not be touched (CI, this project's build machines). Everything the cluster
# does to iptables, bridges and routes stays in that namespace; nothing listens outside it.
#   sandbox.sh up          create the namespace, start the engine, save the host settings the kubelet changes
#   sandbox.sh down        delete the cluster's containers, stop the engine, remove the namespace, its
#                          bridges and cgroups, restore the host settings (also safe after a failed up)
#   sandbox.sh run CMD...  run CMD inside the namespace with DOCKER_HOST set (kind, kubectl, helm, docker)
#   sandbox.sh env         print the DOCKER_HOST of the engine
# The engine's data (the node image, loaded images) lives under $SW_KIND_CACHE/docker between runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

NETNS=$SW_NETNS
STATE=$SW_SANDBOX_STATE
DOCKER_SOCK=$STATE/docker.sock
CGROUP_PARENT=streamwatch-kind
# The kubelet sets these machine-wide (they are not namespaced); down puts the saved values back.
HOST_SYSCTLS="vm/overcommit_memory kernel/panic kernel/panic_on_oops"

in_ns() { nsenter --net="/run/netns/$NETNS" "$@"; }
engine_answers() { DOCKER_HOST=unix://$DOCKER_SOCK /usr/bin/docker version >/dev/null 2>&1; }

up() {
  [ "$(id -u)" = 0 ] || fail "the kind sandbox needs root (network namespace, its own Docker engine)"
  for tool in ip nsenter dockerd jq; do command -v "$tool" >/dev/null || fail "$tool is not installed (make deps installs it)"; done
  mkdir -p "$STATE" "$SW_KIND_CACHE/docker"
  if [ ! -f "$STATE/sysctl.saved" ]; then
    local key; for key in $HOST_SYSCTLS; do echo "$key $(cat "/proc/sys/$key")"; done >"$STATE/sysctl.saved"
  fi
  if ! ip netns list | grep -qw "$NETNS"; then
    ip netns add "$NETNS" || fail "could not create network namespace $NETNS"
  fi
  in_ns ip link set lo up
  if engine_answers; then log "engine already running in $NETNS"; return; fi
  rm -f "$STATE/docker.pid"
  # `ip netns exec` would remount /sys and hide the cgroups from dockerd; nsenter --net only switches
  # the network. The engine gets a bridge and iptables there, and runc-nocapres as its runtime.
  in_ns setsid dockerd --data-root "$SW_KIND_CACHE/docker" --exec-root "$STATE/exec" \
    --pidfile "$STATE/docker.pid" -H "unix://$DOCKER_SOCK" --cgroup-parent "/$CGROUP_PARENT" \
    --add-runtime "sw-runc=$here/node/runc-nocapres" --default-runtime sw-runc \
    >"$STATE/dockerd.log" 2>&1 </dev/null &
  local i; for i in $(seq 1 60); do engine_answers && break; sleep 1; done
  engine_answers || { tail -20 "$STATE/dockerd.log" >&2; fail "the sandbox's Docker engine did not start (log: $STATE/dockerd.log)"; }
  log "engine ready in network namespace $NETNS (DOCKER_HOST=unix://$DOCKER_SOCK)"
}

down() {
  if engine_answers; then
    local ids; ids=$(DOCKER_HOST=unix://$DOCKER_SOCK /usr/bin/docker ps -aq)
    [ -z "$ids" ] || DOCKER_HOST=unix://$DOCKER_SOCK /usr/bin/docker rm -f -v $ids >/dev/null 2>&1 || true
    # A node's /var is an anonymous volume holding every image loaded into it (GBs); this engine is
    # the sandbox's alone, so no volume of it outlives its cluster.
    DOCKER_HOST=unix://$DOCKER_SOCK /usr/bin/docker volume prune -f >/dev/null 2>&1 || true
  fi
  if [ -f "$STATE/docker.pid" ]; then
    local pid; pid=$(cat "$STATE/docker.pid")
    kill "$pid" 2>/dev/null || true
    local i; for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # A node's systemd and kubelet make cgroups under the node's own; Docker removes only the node's.
  local dir
  for dir in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  if ip netns list 2>/dev/null | grep -qw "$NETNS"; then ip netns delete "$NETNS" || true; fi
  if [ -f "$STATE/sysctl.saved" ]; then
    local key value
    while read -r key value; do echo "$value" >"/proc/sys/$key" || true; done <"$STATE/sysctl.saved"
    rm -f "$STATE/sysctl.saved"
  fi
  log "sandbox removed (namespace $NETNS, engine, cgroups; host settings restored)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) echo "DOCKER_HOST=unix://$DOCKER_SOCK" ;;
  run) shift; exec nsenter --net="/run/netns/$NETNS" env "DOCKER_HOST=unix://$DOCKER_SOCK" "$@" ;;
  *) echo "usage: $0 up|down|env|run CMD..." >&2; exit 2 ;;
esac
