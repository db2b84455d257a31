#!/usr/bin/env bash
# Tests deps.sh's decisions without installing, starting or removing
# anything: --dry-run in a private network namespace (nothing answers on
# 127.0.0.1 there) with and without the tools on PATH, and the non-root
# path, which must print the one command to run. Needs root (unshare -n).
set -euo pipefail
cd "$(dirname "$0")"

if [ "$EUID" -ne 0 ]; then
  echo "deps-test: needs root for a private network namespace (unshare -n)" >&2
  exit 2
fi

failed=0
expect() {
  local name=$1 wanted=$2 output=$3
  if [[ "$output" == *"$wanted"* ]]; then
    echo "ok: $name"
  else
    printf 'FAIL: %s\n  wanted: %s\n  got:\n%s\n' "$name" "$wanted" "$output" >&2
    failed=1
  fi
}

bash_bin=$(command -v bash)
empty=$(mktemp -d)
trap 'rmdir "$empty"' EXIT
bare() { unshare -n env -i PATH="$empty" "$bash_bin" deps.sh "$@" 2>&1; }

all="--browser --wrk --promtool --prometheus"
# shellcheck disable=SC2086 # word splitting of $all is the point
out=$(bare --dry-run $all)
expect "fresh machine: one apt-get for everything" \
  "would install: apt-get install -y postgresql redis-server rabbitmq-server chromium chromium-driver wrk && apt-get install -y --no-install-recommends prometheus" \
  "$out"
for server in PostgreSQL Redis RabbitMQ; do
  expect "fresh machine: starts $server" "would start $server" "$out"
done

out=$(bare --dry-run)
expect "fresh machine, no flags: servers only" \
  "would install: apt-get install -y postgresql redis-server rabbitmq-server"$'\n' "$out"

out=$(unshare -n "$bash_bin" deps.sh --dry-run 2>&1)
if command -v redis-server >/dev/null && command -v rabbitmq-server >/dev/null &&
   command -v pg_ctlcluster >/dev/null; then
  expect "installed but stopped: nothing to install" "nothing to install" "$out"
  expect "installed but stopped: starts them" "would start RabbitMQ" "$out"
fi

out=$("$bash_bin" deps.sh --dry-run 2>&1)
if [[ "$out" == *"PostgreSQL is up"*"Redis is up"*"RabbitMQ is up"* ]]; then
  expect "all running: nothing to do" "nothing to install" "$out"
fi

status=0
out=$(unshare -n setpriv --reuid=65534 --regid=65534 --clear-groups \
  env -i PATH="$empty" "$bash_bin" deps.sh --wrk 2>&1) || status=$?
expect "not root: the one command to run" \
  "missing packages; run: sudo apt-get install -y postgresql redis-server rabbitmq-server wrk" "$out"
if [ "$status" -ne 1 ]; then
  echo "FAIL: not root: exit status $status, wanted 1" >&2
  failed=1
fi

exit "$failed"
