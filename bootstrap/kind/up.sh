#!/usr/bin/env bash
# Creates the kind cluster the end-to-end workflow runs on: one node whose
# ports 80/443 reach ingress-nginx, so the Store's Ingress answers on
# 127.0.0.1. Needs docker, kind, kubectl and helm on PATH (GitHub runners
# have docker, kubectl and helm; kind is fetched at KIND_VERSION).
set -euo pipefail

cluster=${CLUSTER_NAME:-storekeeper}
kind_version=${KIND_VERSION:-v0.27.0}
ingress_version=${INGRESS_NGINX_CHART_VERSION:-4.12.1}

if ! command -v kind >/dev/null; then
  curl -fsSLo /tmp/kind "https://kind.sigs.k8s.io/dl/${kind_version}/kind-linux-amd64"
  sudo install -m 0755 /tmp/kind /usr/local/bin/kind
fi

cat <<YAML | kind create cluster --name "$cluster" --wait 120s --config -
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    kubeadmConfigPatches:
      - |
        kind: InitConfiguration
        nodeRegistration:
          kubeletExtraArgs:
            node-labels: "ingress-ready=true"
    extraPortMappings:
      - containerPort: 80
        hostPort: 80
      - containerPort: 443
        hostPort: 443
YAML

helm upgrade --install ingress-nginx ingress-nginx \
  --repo https://kubernetes.github.io/ingress-nginx --version "$ingress_version" \
  --namespace ingress-nginx --create-namespace \
  --set controller.hostPort.enabled=true \
  --set controller.service.type=NodePort \
  --set controller.nodeSelector.ingress-ready=true \
  --set controller.tolerations[0].key=node-role.kubernetes.io/control-plane \
  --set controller.tolerations[0].operator=Exists \
  --set controller.tolerations[0].effect=NoSchedule \
  --wait --timeout 5m
