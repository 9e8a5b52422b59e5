#!/bin/bash
# What the official image's entrypoint does that the chart relies on: ELASTIC_PASSWORD becomes the
# keystore's bootstrap.password (the `elastic` user's password; this distribution cannot create the
# .security index that would otherwise hold it), then Elasticsearch runs in the foreground.
# Any other command is run as given (e.g. `docker run IMAGE elasticsearch-keystore list`).
set -euo pipefail
[ "$#" -gt 0 ] || set -- eswrapper
case "$1" in
  eswrapper | elasticsearch) shift ;;
  -*) ;;
  *) exec "$@" ;;
esac
if [ -n "${ELASTIC_PASSWORD:-}" ]; then
  # -f replaces a value left by an earlier start: the Secret's current password is the one that works.
  printf '%s' "$ELASTIC_PASSWORD" | elasticsearch-keystore add -x -f bootstrap.password
fi
exec elasticsearch "$@"
