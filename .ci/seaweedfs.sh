#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (Apache-2.0), the S3-compatible object store the tests keep checkpoints on,
# from the Go module proxy into the cache. Its go.mod has replace directives, so `go install pkg@version`
# refuses it: the module is downloaded and built as the main module instead. Idempotent; prints where it
# went. A few minutes and ~2.5 GB of memory on a cold Go cache.
set -euo pipefail

SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/streamwatch"
DEST="$CACHE/seaweedfs-$SEAWEEDFS_VERSION"

mkdir -p "$CACHE"
# One build at a time: two sessions (`make test`, `make bench`) may each start one; the later waits here
# and finds the binary made.
exec 9>"$CACHE/seaweedfs-build.lock"
if ! flock -n 9; then
  echo "seaweedfs $SEAWEEDFS_VERSION: another build is under way; waiting for it"
  flock 9
fi
if [ -x "$DEST/weed" ]; then
  echo "seaweedfs $SEAWEEDFS_VERSION: ready in $DEST"
  exit 0
fi
command -v go >/dev/null || { echo "seaweedfs: error: go is not installed" >&2; exit 1; }
tmp=$(mktemp -d "$CACHE/.seaweedfs-XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
echo "seaweedfs $SEAWEEDFS_VERSION: downloading github.com/seaweedfs/seaweedfs from the Go module proxy"
module=$(cd "$tmp" && go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
cp -r "$module" "$tmp/src"
chmod -R u+w "$tmp/src"
echo "seaweedfs $SEAWEEDFS_VERSION: building weed (a few minutes)"
(cd "$tmp/src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/bin/weed" ./weed)
rm -rf "$DEST"
mkdir -p "$DEST"
mv "$tmp/bin/weed" "$DEST/weed"
echo "seaweedfs $SEAWEEDFS_VERSION: ready in $DEST"
