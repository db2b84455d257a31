#!/usr/bin/env bash
# Storekeeper worker bootstrap: prepares the node (common.sh) and joins the
# cluster with `kubeadm join`, using the bootstrap token Terraform generated
# (read from SSM Parameter Store) and the CA public key hash computed here
# from the cluster CA certificate Terraform put in the user data. The join
# therefore verifies the API server it talks to; no hash is copied by hand.
#
# The control plane boots at the same time, so the worker waits until the
# API server answers with a certificate signed by that CA, then retries the
# join (resetting partial state between attempts) until it succeeds.
#
# Idempotent: a joined node skips the join.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=./common.sh
. "${here}/common.sh"

bootstrap_init worker

require_env AWS_REGION KUBERNETES_MINOR CONTROL_PLANE_ENDPOINT JOIN_TOKEN_PARAMETER CA_CERT_FILE
API_WAIT_SECONDS=${API_WAIT_SECONDS:-3600}
JOIN_ATTEMPTS=${JOIN_ATTEMPTS:-10}

JOIN_CONFIG=/etc/storekeeper/kubeadm-join.yaml
JOIN_MARKER="${STOREKEEPER_STATE_DIR}/kubeadm-join.done"
CRI_SOCKET=unix:///run/containerd/containerd.sock

api_answers() {
  curl -fsS --max-time 5 --cacert "$CA_CERT_FILE" "https://${CONTROL_PLANE_ENDPOINT}/readyz" >/dev/null 2>&1
}

write_join_config() {
  step "kubeadm join configuration"
  local ip token hash
  [[ -s $CA_CERT_FILE ]] || die "CA certificate ${CA_CERT_FILE} is missing (user data should have written it)"
  hash=$(ca_cert_hash "$CA_CERT_FILE")
  log "cluster CA public key pin: ${hash}"
  token=$(read_secret_parameter "$JOIN_TOKEN_PARAMETER")
  [[ $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || die "the join token in ${JOIN_TOKEN_PARAMETER} is not in kubeadm's format"
  ip=$(node_ip)

  (
    umask 077
    cat >"$JOIN_CONFIG" <<CONFIG
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "${CONTROL_PLANE_ENDPOINT}"
    token: "${token}"
    caCertHashes:
      - "${hash}"
nodeRegistration:
  criSocket: "${CRI_SOCKET}"
  kubeletExtraArgs:
    - name: node-ip
      value: "${ip}"
CONFIG
  )
}

join_once() {
  kubeadm join --config "$JOIN_CONFIG"
}

reset_partial_join() {
  kubeadm reset -f --cri-socket "$CRI_SOCKET" >/dev/null 2>&1 || true
}

kubeadm_join() {
  if [[ -f $JOIN_MARKER && -f /etc/kubernetes/kubelet.conf ]]; then
    step "kubeadm join"
    log "already joined; skipping kubeadm join"
    return 0
  fi
  if [[ -e /etc/kubernetes/kubelet.conf ]]; then
    step "kubeadm reset (leftovers of an unfinished join)"
    reset_partial_join
  fi
  write_join_config

  step "wait for the Kubernetes API at ${CONTROL_PLANE_ENDPOINT}"
  wait_for "$API_WAIT_SECONDS" 15 "the API server at ${CONTROL_PLANE_ENDPOINT} (is the control plane bootstrapping? see its log)" api_answers ||
    die "the control plane did not answer within ${API_WAIT_SECONDS}s"

  step "kubeadm join"
  local attempt=1
  until join_once; do
    if [[ $attempt -ge $JOIN_ATTEMPTS ]]; then
      die "kubeadm join failed ${attempt} times; is the token expired (join_token_ttl) or the control plane unhealthy?"
    fi
    log "kubeadm join attempt ${attempt}/${JOIN_ATTEMPTS} failed; resetting and retrying in 30s"
    reset_partial_join
    sleep 30
    attempt=$((attempt + 1))
  done
  touch "$JOIN_MARKER"
}

prepare_node
kubeadm_join

step "done"
touch "${STOREKEEPER_STATE_DIR}/bootstrap.done"
log "worker joined the cluster at ${CONTROL_PLANE_ENDPOINT}"
