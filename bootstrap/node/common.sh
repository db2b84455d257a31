#!/usr/bin/env bash
# Storekeeper node bootstrap, the part every node shares. Sourced by
# control-plane.sh and worker.sh; run on its own it only prepares the node:
#
#   kernel modules and sysctls for Kubernetes networking, swap off, time
#   from Amazon Time Sync, containerd with the systemd cgroup driver, and
#   kubeadm/kubelet/kubectl from pkgs.k8s.io, pinned to KUBERNETES_MINOR
#   and held.
#
# Settings come from /etc/storekeeper/bootstrap.env (written by Terraform's
# user data; STOREKEEPER_ENV_FILE overrides the path) or the environment.
# Every step is idempotent: running a script again repairs or skips, never
# breaks. Output goes to the console (cloud-init shows it in the EC2 system
# log) and to /var/log/storekeeper-bootstrap.log; a failed step stops the
# script with a non-zero status and a line naming the step, and leaves
# /var/lib/storekeeper/bootstrap.failed behind.
set -Eeuo pipefail

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin"
# cloud-init runs scripts without HOME; helm and kubectl need one.
export HOME="${HOME:-/root}"
export DEBIAN_FRONTEND=noninteractive

STOREKEEPER_ENV_FILE=${STOREKEEPER_ENV_FILE:-/etc/storekeeper/bootstrap.env}
STOREKEEPER_LOG_FILE=${STOREKEEPER_LOG_FILE:-/var/log/storekeeper-bootstrap.log}
STOREKEEPER_STATE_DIR=${STOREKEEPER_STATE_DIR:-/var/lib/storekeeper}
# The key pkgs.k8s.io signs its repositories with ("isv:kubernetes OBS
# Project"); apt then verifies every package against it.
KUBERNETES_RELEASE_KEY_FINGERPRINT=${KUBERNETES_RELEASE_KEY_FINGERPRINT:-DE15B14486CD377B9E876E1A234654DA9A296436}
CURRENT_STEP="start"
BOOTSTRAP_ROLE="node"

# ---------------------------------------------------------------------------
# Logging, failure reporting, small helpers
# ---------------------------------------------------------------------------

log() {
  printf '%s [storekeeper-bootstrap %s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$BOOTSTRAP_ROLE" "$*" >&2
}

step() {
  CURRENT_STEP=$1
  log "==> ${CURRENT_STEP}"
}

die() {
  log "ERROR: $*"
  exit 1
}

on_err() {
  local status=$1 line=$2 command=$3
  log "command failed with status ${status} (line ${line}): ${command}"
}

on_exit() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    log "FAILED: step '${CURRENT_STEP}' (exit status ${status}). Full log: ${STOREKEEPER_LOG_FILE}"
    mkdir -p "$STOREKEEPER_STATE_DIR"
    printf "step '%s' failed with exit status %s at %s\n" "$CURRENT_STEP" "$status" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
      >"${STOREKEEPER_STATE_DIR}/bootstrap.failed" || true
  fi
}

# bootstrap_init ROLE: root check, logging to console and file, traps, settings.
bootstrap_init() {
  BOOTSTRAP_ROLE=$1
  if [[ ${STOREKEEPER_BOOTSTRAP_INITIALISED:-} == 1 ]]; then
    return 0
  fi
  if [[ $EUID -ne 0 ]]; then
    echo "storekeeper-bootstrap: must run as root (try: sudo $0)" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$STOREKEEPER_LOG_FILE")" "$STOREKEEPER_STATE_DIR"
  touch "$STOREKEEPER_LOG_FILE"
  chmod 0600 "$STOREKEEPER_LOG_FILE"
  exec > >(tee -a "$STOREKEEPER_LOG_FILE") 2>&1
  trap 'on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR
  trap on_exit EXIT
  STOREKEEPER_BOOTSTRAP_INITIALISED=1

  if [[ -r $STOREKEEPER_ENV_FILE ]]; then
    # shellcheck source=/dev/null
    . "$STOREKEEPER_ENV_FILE"
  else
    log "no settings file at ${STOREKEEPER_ENV_FILE}; using the environment only"
  fi
  rm -f "${STOREKEEPER_STATE_DIR}/bootstrap.failed"
  log "starting ${BOOTSTRAP_ROLE} bootstrap ($0), log: ${STOREKEEPER_LOG_FILE}"
}

# require_env NAME...: every named setting must be non-empty.
require_env() {
  local name missing=()
  for name in "$@"; do
    if [[ -z ${!name:-} ]]; then
      missing+=("$name")
    fi
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    die "missing settings: ${missing[*]} (expected in ${STOREKEEPER_ENV_FILE} or the environment)"
  fi
}

# retry ATTEMPTS DELAY COMMAND...: runs COMMAND until it succeeds. COMMAND
# must be a single command or a function that returns non-zero on failure
# (errexit does not apply inside a condition).
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    if [[ $n -ge $attempts ]]; then
      log "giving up after ${n} attempts: $*"
      return 1
    fi
    log "attempt ${n}/${attempts} failed: $*; retrying in ${delay}s"
    sleep "$delay"
    n=$((n + 1))
  done
}

# wait_for SECONDS INTERVAL WHAT COMMAND...: polls COMMAND until it succeeds
# or SECONDS have passed (then returns 1 with a message naming WHAT).
wait_for() {
  local timeout=$1 interval=$2 what=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  log "waiting (up to ${timeout}s) for ${what}"
  until "$@"; do
    if [[ $SECONDS -ge $deadline ]]; then
      log "timed out after ${timeout}s waiting for ${what}"
      return 1
    fi
    sleep "$interval"
  done
}

# imds PATH: reads instance metadata with an IMDSv2 session token.
imds() {
  local token
  token=$(curl -fsS --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
    http://169.254.169.254/latest/api/token) || return 1
  curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: ${token}" \
    "http://169.254.169.254/latest/meta-data/$1"
}

node_ip() {
  retry 10 3 imds local-ipv4
}

apt_install() {
  retry 5 15 apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@"
}

apt_update() {
  retry 5 15 apt-get -o DPkg::Lock::Timeout=600 update -q
}

# install_if_changed SOURCE TARGET MODE: replaces TARGET when it differs;
# returns 0 when it changed the file, 1 when nothing changed.
install_if_changed() {
  local source=$1 target=$2 mode=$3
  if [[ -f $target ]] && cmp -s "$source" "$target"; then
    rm -f "$source"
    return 1
  fi
  install -D -m "$mode" "$source" "$target"
  rm -f "$source"
  return 0
}

# fetch_verified URL SHA256 DEST: downloads URL to DEST only if its SHA-256
# is SHA256 (a pin set next to the version it belongs to); an empty or
# malformed pin is an error, never a skipped check.
fetch_verified() {
  local url=$1 expected=$2 dest=$3 tmp actual
  [[ $expected =~ ^[0-9a-f]{64}$ ]] || die "no SHA-256 pin for ${url} (got '${expected}')"
  tmp=$(mktemp)
  retry 5 15 curl -fsSL -o "$tmp" "$url" || { rm -f "$tmp"; die "cannot download ${url}"; }
  actual=$(sha256sum "$tmp" | cut -d' ' -f1)
  if [[ $actual != "$expected" ]]; then
    rm -f "$tmp"
    die "checksum mismatch for ${url}: expected ${expected}, got ${actual} (a new version needs its new pin)"
  fi
  install -D -m 0644 "$tmp" "$dest"
  rm -f "$tmp"
}

# ---------------------------------------------------------------------------
# AWS: the CLI and SSM Parameter Store (bootstrap secrets)
# ---------------------------------------------------------------------------

ensure_aws_cli() {
  if command -v aws >/dev/null; then
    return 0
  fi
  if command -v snap >/dev/null; then
    # Ubuntu 24.04 ships the CLI as a snap only; wait for snapd's first boot.
    retry 30 10 snap wait system seed.loaded
    retry 5 15 snap install aws-cli --classic
  else
    apt_install awscli
  fi
  command -v aws >/dev/null || die "the AWS CLI is still missing after installing it"
}

# ssm_get NAME: prints a (decrypted) SSM parameter.
ssm_get() {
  aws ssm get-parameter --region "$AWS_REGION" --name "$1" --with-decryption \
    --query Parameter.Value --output text
}

read_secret_parameter() {
  local name=$1 value
  value=$(retry 10 10 ssm_get "$name") ||
    die "cannot read SSM parameter ${name}: does the instance role allow ssm:GetParameter and kms:Decrypt on it?"
  [[ -n $value ]] || die "SSM parameter ${name} is empty"
  printf '%s' "$value"
}

# ---------------------------------------------------------------------------
# Node preparation
# ---------------------------------------------------------------------------

setup_kernel() {
  step "kernel modules and sysctls"
  cat >/etc/modules-load.d/storekeeper-k8s.conf <<'EOF'
overlay
br_netfilter
EOF
  modprobe overlay
  modprobe br_netfilter

  cat >/etc/sysctl.d/90-storekeeper-k8s.conf <<'EOF'
net.bridge.bridge-nf-call-iptables  = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward                 = 1
EOF
  sysctl --system >/dev/null
  [[ $(sysctl -n net.ipv4.ip_forward) == 1 ]] || die "net.ipv4.ip_forward is not 1 after sysctl --system"
}

disable_swap() {
  step "swap off"
  swapoff -a
  # Comment out swap entries so swap stays off after a reboot.
  sed -ri '/^[^#].*[[:space:]]swap[[:space:]]/ s/^/# storekeeper: swap off for kubelet: /' /etc/fstab
}

# The nodes may not reach public NTP servers (egress is HTTP/HTTPS only);
# Amazon Time Sync at the link-local 169.254.169.123 is always reachable.
setup_time_sync() {
  step "time sync (Amazon Time Sync Service)"
  if command -v chronyc >/dev/null; then
    mkdir -p /etc/chrony/sources.d
    echo 'server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4' >/etc/chrony/sources.d/storekeeper-aws.sources
    if ! chronyc reload sources >/dev/null 2>&1 && ! systemctl restart chrony; then
      log "WARNING: could not reload chrony; clocks may drift"
    fi
  else
    mkdir -p /etc/systemd/timesyncd.conf.d
    printf '[Time]\nNTP=169.254.169.123\n' >/etc/systemd/timesyncd.conf.d/storekeeper-aws.conf
    if ! systemctl restart systemd-timesyncd; then
      log "WARNING: could not restart systemd-timesyncd; clocks may drift"
    fi
  fi
}

install_base_packages() {
  step "base packages"
  apt_update
  apt_install ca-certificates curl gpg openssl conntrack socat iptables tar gzip jq
}

install_kubernetes_packages() {
  step "kubeadm, kubelet and kubectl ${KUBERNETES_MINOR}"
  local keyring=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
  local repo="https://pkgs.k8s.io/core:/stable:/v${KUBERNETES_MINOR}/deb/"
  local list=/etc/apt/sources.list.d/kubernetes.list
  local line="deb [signed-by=${keyring}] ${repo} /"

  if [[ ! -s $keyring ]] || ! grep -qsF "$line" "$list"; then
    install -d -m 0755 /etc/apt/keyrings
    retry 5 10 curl -fsSL -o /tmp/kubernetes-release.key "${repo}Release.key"
    # The key is renewed (new expiry, new bytes) under the same fingerprint:
    # pin that, not the file's checksum.
    local fingerprint
    fingerprint=$(gpg --show-keys --with-colons /tmp/kubernetes-release.key | awk -F: '$1 == "fpr" { print $10; exit }')
    [[ $fingerprint == "$KUBERNETES_RELEASE_KEY_FINGERPRINT" ]] ||
      die "the pkgs.k8s.io signing key has fingerprint '${fingerprint}', not ${KUBERNETES_RELEASE_KEY_FINGERPRINT}"
    gpg --dearmor --yes -o "$keyring" /tmp/kubernetes-release.key
    chmod 0644 "$keyring"
    rm -f /tmp/kubernetes-release.key
    printf '%s\n' "$line" >"$list"
    apt_update
  fi

  if command -v kubeadm >/dev/null && [[ $(kubeadm version -o short) == "v${KUBERNETES_MINOR}."* ]]; then
    log "kubeadm $(kubeadm version -o short) already installed"
  else
    apt_install --allow-change-held-packages kubelet kubeadm kubectl
  fi
  apt-mark hold kubelet kubeadm kubectl >/dev/null
  [[ $(kubeadm version -o short) == "v${KUBERNETES_MINOR}."* ]] ||
    die "installed kubeadm $(kubeadm version -o short) is not ${KUBERNETES_MINOR}.x"
  systemctl enable kubelet >/dev/null 2>&1
}

install_containerd() {
  step "containerd (systemd cgroup driver)"
  if ! command -v containerd >/dev/null; then
    apt_install containerd
  fi

  # The sandbox (pause) image kubeadm expects, so the kubelet and containerd agree.
  local pause
  pause=$(kubeadm config images list --kubernetes-version "$(kubeadm version -o short)" 2>/dev/null | grep '/pause:' || true)
  pause=${pause:-registry.k8s.io/pause:3.10}

  local rendered
  rendered=$(mktemp)
  containerd config default >"$rendered"
  sed -ri \
    -e 's/^([[:space:]]*)SystemdCgroup = false/\1SystemdCgroup = true/' \
    -e "s#^([[:space:]]*)sandbox_image = \".*\"#\\1sandbox_image = \"${pause}\"#" \
    -e "s#^([[:space:]]*)sandbox = '.*'#\\1sandbox = '${pause}'#" \
    "$rendered"
  grep -q 'SystemdCgroup = true' "$rendered" ||
    die "could not enable SystemdCgroup in containerd's default config (containerd $(containerd --version))"

  if install_if_changed "$rendered" /etc/containerd/config.toml 0644; then
    log "containerd config updated; restarting containerd"
    systemctl restart containerd
  fi
  systemctl enable --now containerd >/dev/null 2>&1

  cat >/etc/crictl.yaml <<'EOF'
runtime-endpoint: unix:///run/containerd/containerd.sock
image-endpoint: unix:///run/containerd/containerd.sock
timeout: 10
EOF
  retry 10 3 crictl info >/dev/null
}

# prepare_node: everything a node needs before kubeadm init or join.
prepare_node() {
  require_env KUBERNETES_MINOR
  setup_kernel
  disable_swap
  setup_time_sync
  install_base_packages
  step "AWS CLI"
  ensure_aws_cli
  install_kubernetes_packages
  install_containerd
}

# ca_cert_hash FILE: the "sha256:<hex>" pin of a CA certificate's public key,
# as `kubeadm join --discovery-token-ca-cert-hash` expects it.
ca_cert_hash() {
  local hash
  hash=$(openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)
  [[ $hash =~ ^[0-9a-f]{64}$ ]] || die "could not compute the public key hash of $1"
  printf 'sha256:%s' "$hash"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  bootstrap_init node
  prepare_node
  log "node prepared"
fi
