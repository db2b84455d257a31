#!/usr/bin/env bash
# Creates the kind cluster the end-to-end workflow runs on, with the same
# edge as the kubeadm cluster (bootstrap/node/edge.sh): Gateway API CRDs and
# Envoy Gateway, pinned by digest, and a Gateway `shop` (HTTP only: nothing
# here is public) whose Envoy answers on the node's port 30080, mapped to
# 127.0.0.1:80. Needs docker, kubectl and helm 3.18+ on PATH (GitHub runners
# have them). kind, when missing, is built with `go install` at KIND_VERSION
# (the Go checksum database verifies the module), or downloaded and checked
# against KIND_SHA256 where there is no Go. kind's default network (kindnet)
# enforces NetworkPolicy since kind v0.24.0 (kube-network-policies), which the
# workflow's denial step relies on: keep kind_version at v0.24.0 or later.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../node/edge.sh
. "${here}/../node/edge.sh"

cluster=${CLUSTER_NAME:-storekeeper}
# renovate: datasource=github-releases depName=kubernetes-sigs/kind
kind_version=${KIND_VERSION:-v0.27.0}
# sha256 of kind-linux-amd64 at kind_version (the release's .sha256sum file).
kind_sha256=${KIND_SHA256:-}
# The routes of these namespaces may attach to the Gateway.
shop_namespaces=${SHOP_NAMESPACES:-shop}

if ! command -v kind >/dev/null && command -v go >/dev/null; then
  GOFLAGS=-mod=mod go install "sigs.k8s.io/kind@${kind_version}"
  PATH="$(go env GOPATH)/bin:${PATH}"
  export PATH
fi
if ! command -v kind >/dev/null; then
  if [[ ! $kind_sha256 =~ ^[0-9a-f]{64}$ ]]; then
    echo "up.sh: set KIND_SHA256 to the sha256 of kind-linux-amd64 ${kind_version}" >&2
    exit 1
  fi
  curl -fsSLo /tmp/kind "https://kind.sigs.k8s.io/dl/${kind_version}/kind-linux-amd64"
  echo "${kind_sha256}  /tmp/kind" | sha256sum -c -
  sudo install -m 0755 /tmp/kind /usr/local/bin/kind
fi

cat <<YAML | kind create cluster --name "$cluster" --wait 120s --config -
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: ${EDGE_HTTP_NODE_PORT}
        hostPort: 80
        listenAddress: "127.0.0.1"
YAML

edge_crds
edge_controller
edge_class http
edge_gateway shop ""
for ns in $shop_namespaces; do
  edge_namespace "$ns" shop
done
kubectl wait -n "$EDGE_NAMESPACE" gateway/shop --for=condition=Programmed --timeout=300s
