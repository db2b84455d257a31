#!/usr/bin/env bash
# Makes sure this machine has what the local shop and its tests need:
# PostgreSQL, Redis and RabbitMQ running and answering, and (with --browser)
# Debian's Chromium and ChromeDriver for the real-browser test.
#
# It starts a server only when it is installed but not answering, and never
# reconfigures or stops one. Safe to run again and again.
set -euo pipefail

want_browser=false
want_wrk=false
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=true ;;
    --wrk) want_wrk=true ;;
    *) echo "deps.sh: unknown argument '$arg' (expected --browser or --wrk)" >&2; exit 2 ;;
  esac
done

say() { printf 'deps: %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2 tries=${3:-60}
  for _ in $(seq "$tries"); do
    if port_open "$port"; then say "$name is up on 127.0.0.1:$port"; return 0; fi
    sleep 1
  done
  say "$name did not come up on 127.0.0.1:$port" >&2
  return 1
}

ensure_postgres() {
  if port_open 5432; then say "PostgreSQL is up"; return; fi
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_port PostgreSQL 5432
}

ensure_redis() {
  if port_open 6379; then say "Redis is up"; return; fi
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port Redis 6379
}

ensure_rabbitmq() {
  if port_open 5672; then say "RabbitMQ is up"; return; fi
  say "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port RabbitMQ 5672 120
}

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    say "need root to install $*; run: sudo apt-get install -y $*" >&2
    exit 1
  fi
  say "installing $* from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres
ensure_redis
ensure_rabbitmq

# CHROME_BIN / CHROMEDRIVER name a browser and driver that are already
# there (GitHub's Ubuntu runners ship Google Chrome); otherwise Debian's.
if $want_browser; then
  if [ -n "${CHROME_BIN:-}" ] && [ -x "${CHROME_BIN}" ] && [ -x "${CHROMEDRIVER:-}" ]; then
    say "using $CHROME_BIN and $CHROMEDRIVER"
  elif ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
    apt_install chromium chromium-driver
  fi
fi
if $want_wrk && ! command -v wrk >/dev/null; then
  apt_install wrk
fi
