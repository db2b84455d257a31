#!/usr/bin/env bash
# The shop's edge, shared by the node bootstrap (control-plane.sh sources it)
# and the kind cluster (bootstrap/kind/up.sh, .github/workflows/e2e-kind.yml):
#
#   - Gateway API CRDs (standard channel) and Envoy Gateway's own CRDs, from
#     Envoy Gateway's CRD chart, pinned by digest and applied server-side on
#     every run, so an upgrade of the pins upgrades the CRDs too;
#   - Envoy Gateway (the controller), pinned by chart digest and image digest;
#   - GatewayClass `storekeeper`, whose EnvoyProxy runs Envoy as a DaemonSet
#     behind a NodePort Service on fixed ports (30080 HTTP, 30443 HTTPS): the
#     cloud load balancer (Terraform) or kind's port mapping targets them;
#   - a Gateway per shop host, optionally with an HTTPS listener whose
#     certificate cert-manager obtains from an ACME issuer (HTTP-01 through
#     the same Gateway), and an HTTP listener that only redirects to HTTPS
#     (and answers ACME challenges).
#
# A Store attaches to a Gateway by naming it in spec.ingress.gateway: the
# operator then renders the Store's HTTPRoute `<store>-edge` itself.
#
# Every pin lives here, once; Renovate updates the lines marked `renovate:`.
# Helm verifies a chart pulled by digest, so a pin that does not match what
# the registry serves fails the install instead of installing something else.

# renovate: datasource=docker depName=docker.io/envoyproxy/gateway-helm
EDGE_ENVOY_GATEWAY_VERSION=${EDGE_ENVOY_GATEWAY_VERSION:-v1.8.3}
EDGE_ENVOY_GATEWAY_CHART=${EDGE_ENVOY_GATEWAY_CHART:-oci://docker.io/envoyproxy/gateway-helm@sha256:cfb34ff4266c87a394cd6be5c13607a2dd47083aef771368302eaeaa99c4a0a9}
EDGE_ENVOY_GATEWAY_CRDS_CHART=${EDGE_ENVOY_GATEWAY_CRDS_CHART:-oci://docker.io/envoyproxy/gateway-crds-helm@sha256:99b14db0bc57c8f413023d66145a2c53e8ed47f85fe0163b675c04165ff242d4}
EDGE_ENVOY_GATEWAY_IMAGE=${EDGE_ENVOY_GATEWAY_IMAGE:-docker.io/envoyproxy/gateway:v1.8.3@sha256:e7a8c70537628bf996e5dec5c4c835704b4b9f4f715a74cf361bea30608c49ac}
EDGE_ENVOY_PROXY_IMAGE=${EDGE_ENVOY_PROXY_IMAGE:-docker.io/envoyproxy/envoy:distroless-v1.38.3@sha256:574348fada8eb1130b448132287d76626dfb07525b16668075382f8e154a45a8}
# renovate: datasource=docker depName=quay.io/jetstack/charts/cert-manager
EDGE_CERT_MANAGER_VERSION=${EDGE_CERT_MANAGER_VERSION:-v1.21.1}
# Empty: pulled by version only (see docs/delivery.md, "Pins"); set it to
# "sha256:<digest>" to pin the chart by digest as well. Either way Helm
# checks the chart's signature (its provenance file names the chart's
# SHA-256) against cert-manager's release key, pinned by fingerprint.
EDGE_CERT_MANAGER_CHART_DIGEST=${EDGE_CERT_MANAGER_CHART_DIGEST:-}
EDGE_CERT_MANAGER_KEY_FINGERPRINT=1020CF3C033D4F35BAE1C19E1226061C665DF13E
EDGE_CERT_MANAGER_KEYRING_URL=https://cert-manager.io/public-keys/cert-manager-keyring-2021-09-20-${EDGE_CERT_MANAGER_KEY_FINGERPRINT}.gpg

EDGE_CONTROLLER_NAMESPACE=envoy-gateway-system
EDGE_GATEWAY_CLASS=storekeeper
EDGE_NAMESPACE=${EDGE_NAMESPACE:-storekeeper-edge}
EDGE_HTTP_NODE_PORT=30080
EDGE_HTTPS_NODE_PORT=30443
EDGE_ISSUER=storekeeper-acme
# Namespaces whose routes may attach to a shop's Gateway carry this label,
# valued with the Gateway's name.
EDGE_ROUTE_LABEL=storekeeper.dev/gateway

edge_log() {
  if declare -F log >/dev/null; then log "$@"; else printf 'edge: %s\n' "$*" >&2; fi
}

# Helm pulls charts by digest from 3.18 on.
edge_check_helm() {
  local version
  version=$(helm version --template '{{.Version}}')
  if [[ ! $version =~ ^v3\.(1[89]|[2-9][0-9])\. && ! $version =~ ^v[4-9]\. ]]; then
    edge_log "helm ${version} cannot pull charts by digest; need 3.18 or later"
    return 1
  fi
}

# edge_crds: Gateway API (standard channel) and Envoy Gateway CRDs. Rendered
# and applied server-side (too large for a client-side apply's annotation),
# so each run upgrades them to the pinned chart's.
edge_crds() {
  edge_check_helm || return 1
  local rendered
  rendered=$(mktemp)
  helm template eg-crds "$EDGE_ENVOY_GATEWAY_CRDS_CHART" \
    --set crds.gatewayAPI.enabled=true \
    --set crds.gatewayAPI.channel=standard \
    --set crds.envoyGateway.enabled=true >"$rendered" || { rm -f "$rendered"; return 1; }
  kubectl apply --server-side --force-conflicts -f "$rendered" || { rm -f "$rendered"; return 1; }
  rm -f "$rendered"
  kubectl wait --for condition=established --timeout=180s \
    crd/gatewayclasses.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io \
    crd/httproutes.gateway.networking.k8s.io crd/referencegrants.gateway.networking.k8s.io \
    crd/envoyproxies.gateway.envoyproxy.io
}

# edge_controller: Envoy Gateway itself (its CRDs come from edge_crds).
edge_controller() {
  edge_check_helm || return 1
  helm upgrade --install eg "$EDGE_ENVOY_GATEWAY_CHART" \
    --namespace "$EDGE_CONTROLLER_NAMESPACE" --create-namespace \
    --skip-crds \
    --set-string "global.images.envoyGateway.image=${EDGE_ENVOY_GATEWAY_IMAGE}" \
    --atomic --wait --timeout 10m
}

# edge_class TLS: the GatewayClass and the EnvoyProxy it points at. TLS is
# "tls" when Gateways of this class have an HTTPS listener (the Service then
# gets both node ports), anything else for HTTP only.
edge_class() {
  local tls=$1 ports
  ports="
                - name: http-80
                  port: 80
                  nodePort: ${EDGE_HTTP_NODE_PORT}"
  if [[ $tls == tls ]]; then
    ports+="
                - name: https-443
                  port: 443
                  nodePort: ${EDGE_HTTPS_NODE_PORT}"
  fi
  kubectl apply --server-side --force-conflicts -f - <<YAML
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata:
  name: ${EDGE_GATEWAY_CLASS}
  namespace: ${EDGE_CONTROLLER_NAMESPACE}
spec:
  provider:
    type: Kubernetes
    kubernetes:
      # One Envoy per node, so the load balancer can target every node and
      # externalTrafficPolicy Local keeps the shopper's address.
      envoyDaemonSet:
        container:
          image: ${EDGE_ENVOY_PROXY_IMAGE}
      envoyService:
        type: NodePort
        externalTrafficPolicy: Local
        patch:
          type: StrategicMerge
          value:
            spec:
              ports:${ports}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: ${EDGE_GATEWAY_CLASS}
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
  parametersRef:
    group: gateway.envoyproxy.io
    kind: EnvoyProxy
    name: ${EDGE_GATEWAY_CLASS}
    namespace: ${EDGE_CONTROLLER_NAMESPACE}
YAML
  kubectl wait --for=condition=Accepted --timeout=300s "gatewayclass/${EDGE_GATEWAY_CLASS}"
}

# edge_namespace NAME GATEWAY: creates NAME if missing and lets its routes
# attach to GATEWAY.
edge_namespace() {
  kubectl create namespace "$1" --dry-run=client -o yaml | kubectl apply -f - >/dev/null &&
    kubectl label namespace "$1" "${EDGE_ROUTE_LABEL}=$2" --overwrite >/dev/null
}

# edge_gateway NAME HOST [TLS_SECRET_NAMESPACE TLS_SECRET]: a Gateway in
# EDGE_NAMESPACE for one shop host ("" answers any host). With a TLS Secret,
# an HTTPS listener serves the shop and the HTTP listener only redirects to
# it (routes of labelled namespaces other than EDGE_NAMESPACE attach to
# HTTPS only when they name it; ACME's challenge routes attach to HTTP).
edge_gateway() {
  local name=$1 host=$2 secret_ns=${3:-} secret=${4:-} hostname=""
  if [[ -n $host ]]; then
    hostname="
      hostname: \"${host}\""
  fi
  edge_namespace "$EDGE_NAMESPACE" "$name" || return 1
  local listeners="
    - name: http
      protocol: HTTP
      port: 80${hostname}
      allowedRoutes:
        namespaces:
          from: Selector
          selector:
            matchLabels:
              ${EDGE_ROUTE_LABEL}: ${name}"
  if [[ -n $secret ]]; then
    listeners+="
    - name: https
      protocol: HTTPS
      port: 443${hostname}
      tls:
        mode: Terminate
        certificateRefs:
          - group: \"\"
            kind: Secret
            name: ${secret}
            namespace: ${secret_ns}
      allowedRoutes:
        namespaces:
          from: Selector
          selector:
            matchLabels:
              ${EDGE_ROUTE_LABEL}: ${name}"
  fi
  kubectl apply --server-side --force-conflicts -f - <<YAML || return 1
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ${name}
  namespace: ${EDGE_NAMESPACE}
spec:
  gatewayClassName: ${EDGE_GATEWAY_CLASS}
  listeners:${listeners}
YAML
  if [[ -n $secret ]]; then
    # Plain HTTP never reaches the shop: everything but an ACME challenge
    # (a longer, exact path match on its own route) is redirected.
    kubectl apply --server-side --force-conflicts -f - <<YAML || return 1
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}-https-redirect
  namespace: ${EDGE_NAMESPACE}
spec:
  parentRefs:
    - group: gateway.networking.k8s.io
      kind: Gateway
      name: ${name}
      sectionName: http
  rules:
    - filters:
        - type: RequestRedirect
          requestRedirect:
            scheme: https
            statusCode: 301
YAML
  fi
}

# edge_cert_manager: cert-manager with its Gateway API support on (its
# HTTP-01 solver then answers through the shop's Gateway), its chart's
# signature verified (needs gpg).
edge_cert_manager() {
  edge_check_helm || return 1
  local chart=oci://quay.io/jetstack/charts/cert-manager keyring fingerprint status=0
  if [[ -n $EDGE_CERT_MANAGER_CHART_DIGEST ]]; then
    chart+="@${EDGE_CERT_MANAGER_CHART_DIGEST}"
  fi
  keyring=$(mktemp)
  curl -fsSL -o "$keyring" "$EDGE_CERT_MANAGER_KEYRING_URL" || { rm -f "$keyring"; return 1; }
  fingerprint=$(gpg --show-keys --with-colons "$keyring" | awk -F: '$1 == "fpr" { print $10; exit }')
  if [[ $fingerprint != "$EDGE_CERT_MANAGER_KEY_FINGERPRINT" ]]; then
    edge_log "cert-manager's keyring has fingerprint '${fingerprint}', not ${EDGE_CERT_MANAGER_KEY_FINGERPRINT}"
    rm -f "$keyring"
    return 1
  fi
  helm upgrade --install cert-manager "$chart" --version "$EDGE_CERT_MANAGER_VERSION" \
    --verify --keyring "$keyring" \
    --namespace cert-manager --create-namespace \
    --set crds.enabled=true --set crds.keep=true \
    --set config.apiVersion=controller.config.cert-manager.io/v1alpha1 \
    --set config.kind=ControllerConfiguration \
    --set config.enableGatewayAPI=true \
    --atomic --wait --timeout 10m || status=$?
  rm -f "$keyring"
  return "$status"
}

# edge_issuer EMAIL SERVER GATEWAY: the ACME ClusterIssuer, solving HTTP-01
# through GATEWAY's HTTP listener.
edge_issuer() {
  local email=$1 server=$2 gateway=$3
  kubectl apply --server-side --force-conflicts -f - <<YAML
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: ${EDGE_ISSUER}
spec:
  acme:
    email: "${email}"
    server: "${server}"
    privateKeySecretRef:
      name: ${EDGE_ISSUER}-account
    solvers:
      - http01:
          gatewayHTTPRoute:
            parentRefs:
              - group: gateway.networking.k8s.io
                kind: Gateway
                name: ${gateway}
                namespace: ${EDGE_NAMESPACE}
                sectionName: http
YAML
}

# edge_certificate NAMESPACE SECRET HOST GATEWAY: a certificate for HOST in
# the shop's namespace (the Store's spec.ingress.tls.secretName names it),
# and the grant that lets GATEWAY's HTTPS listener read it.
edge_certificate() {
  local ns=$1 secret=$2 host=$3 gateway=$4
  edge_namespace "$ns" "$gateway" || return 1
  kubectl apply --server-side --force-conflicts -f - <<YAML
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: ${secret}
  namespace: ${ns}
spec:
  secretName: ${secret}
  dnsNames: ["${host}"]
  issuerRef:
    group: cert-manager.io
    kind: ClusterIssuer
    name: ${EDGE_ISSUER}
  privateKey:
    algorithm: ECDSA
    size: 256
    rotationPolicy: Always
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: ${gateway}-gateway-tls
  namespace: ${ns}
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: ${EDGE_NAMESPACE}
  to:
    - group: ""
      kind: Secret
      name: ${secret}
YAML
}
