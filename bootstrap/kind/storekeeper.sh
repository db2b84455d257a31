#!/usr/bin/env bash
# Runs the operator's own CLI (`storekeeper deploy`, `storekeeper wait`, ...)
# from the operator image already built for the kind job, against the kind
# cluster: host network (the kubeconfig points at 127.0.0.1), the caller's
# kubeconfig mounted read-only, the caller's uid so the image's non-root
# user can read it.
#
# Usage: STOREKEEPER_IMAGE=ghcr.io/storekeeper-dev/storekeeper:e2e storekeeper.sh deploy shop --namespace shop --version 1.2.3
set -euo pipefail

image=${STOREKEEPER_IMAGE:?set STOREKEEPER_IMAGE to the operator image}
kubeconfig=${KUBECONFIG:-${HOME}/.kube/config}
exec docker run --rm --network host --user "$(id -u):$(id -g)" \
  -v "${kubeconfig}:/kubeconfig:ro" -e KUBECONFIG=/kubeconfig \
  "$image" "$@"
