#!/usr/bin/env bash
# Offline self-test of the node bootstrap scripts: runs control-plane.sh and
# worker.sh for real, but against stub commands (kubeadm, kubectl, helm,
# aws, apt-get, systemctl, curl, ...) inside a private mount namespace whose
# /etc, /opt, /root, /usr/local and /var are throw-away overlays. The host is
# not changed and nothing touches the network.
#
# It checks the control flow end to end: the rendered kubeadm and containerd
# configuration, the CA pin the worker computes, what is installed with which
# settings, that a second run skips finished steps, and that a failing step
# stops the script with a visible message.
#
# Needs root, util-linux unshare and overlayfs (a Linux host or a privileged
# container). Usage: sudo bootstrap/node/selftest.sh
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $EUID -ne 0 ]]; then
  echo "selftest: needs root (mount namespaces and overlays): sudo $0" >&2
  exit 2
fi

work=$(mktemp -d /tmp/storekeeper-selftest.XXXXXX)
if [[ -z ${SELFTEST_KEEP:-} ]]; then trap 'rm -rf "$work"' EXIT; else echo "selftest: keeping $work"; fi
passed=0
failed=0

ok() {
  echo "ok: $*"
  passed=$((passed + 1))
}

not_ok() {
  echo "FAILED: $*"
  failed=$((failed + 1))
}

check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# ---------------------------------------------------------------------------
# Fixtures: a cluster CA, the settings Terraform would write, stub commands
# ---------------------------------------------------------------------------

fixtures() {
  mkdir -p "$work/stubs" "$work/helm-dist/linux-amd64" "$work/helm-dist/linux-arm64"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.crt" \
    -subj /CN=kubernetes -days 1 2>/dev/null
  expected_hash="sha256:$(openssl x509 -pubkey -noout -in "$work/ca.crt" |
    openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)"
  # The example Store as Terraform's yamlencode writes it (every key and
  # string quoted, keys sorted), as a person writes it, and without the
  # Gateway.
  cat >"$work/example-store.yaml" <<'EOF'
"apiVersion": "storekeeper.dev/v1alpha1"
"kind": "Store"
"metadata":
  "name": "shop"
  "namespace": "shop"
"spec":
  "ingress":
    "controllerNamespace": "envoy-gateway-system"
    "gateway":
      "name": "shop"
      "namespace": "storekeeper-edge"
      "sectionName": "https"
    "host": "shop.test.example"
    "tls":
      "secretName": "shop-tls"
  "version": "0.1.0"
EOF
  cat >"$work/hand-store.yaml" <<'EOF'
# written by hand
apiVersion: storekeeper.dev/v1alpha1
kind: Store
metadata:
  labels:
    name: not-this-one
  name: shop   # the Store
  namespace: 'shop'
spec:
  version: "0.1.0"
  ingress:
    host: shop.test.example
    tls:
      secretName: shop-tls
    gateway:
      name: shop
      namespace: storekeeper-edge
      sectionName: https
EOF
  grep -v -e '^    gateway:' -e '^      name: shop' -e '^      namespace: storekeeper-edge' -e '^      sectionName' \
    "$work/hand-store.yaml" >"$work/no-gateway-store.yaml"

  cat >"$work/control-plane.env" <<'EOF'
AWS_REGION='eu-west-1'
CALICO_ENCAPSULATION='VXLAN'
CALICO_VERSION='v3.31.3'
CA_CERT_FILE='/etc/storekeeper/ca.crt'
CA_KEY_PARAMETER='/storekeeper/test/kubeadm/ca-key'
CLUSTER_NAME='test'
CONTROL_PLANE_ENDPOINT='10.0.128.10:6443'
CONTROL_PLANE_IP='10.0.128.10'
EXAMPLE_STORE_FILE='/etc/storekeeper/example-store.yaml'
EXAMPLE_STORE_NAMESPACE='default-ns'
EXPECTED_WORKERS='2'
EDGE_GATEWAY_NAME='shop'
EDGE_NAMESPACE='storekeeper-edge'
ACME_EMAIL='ops@test.example'
HELM_VERSION='v3.19.5'
JOIN_TOKEN_PARAMETER='/storekeeper/test/kubeadm/join-token'
JOIN_TOKEN_TTL='24h'
KUBECONFIG_KMS_KEY='arn:aws:kms:eu-west-1:123456789012:key/test'
KUBECONFIG_PARAMETER='/storekeeper/test/kubeconfig/admin'
KUBERNETES_MINOR='1.35'
LOCAL_PATH_PROVISIONER_VERSION='v0.0.34'
OPERATOR_CHART='oci://ghcr.io/storekeeper-dev/charts/storekeeper'
OPERATOR_CHART_VERSION='0.1.0'
OPERATOR_IMAGE_REPOSITORY=''
OPERATOR_IMAGE_TAG='it'\''s-a-tag'
POD_CIDR='192.168.0.0/16'
SERVICE_CIDR='10.96.0.0/12'
SHOP_HOST='shop.test.example'
SHOP_TLS_SECRET='shop-tls'
EOF
  # The pins of what curl's stub serves (as Terraform's variables pin the
  # real files).
  printf "CALICO_CRDS_SHA256='%s'\nCALICO_OPERATOR_SHA256='%s'\nLOCAL_PATH_PROVISIONER_SHA256='%s'\n" \
    "$(printf 'calico crds\n' | sha256sum | cut -d' ' -f1)" \
    "$(printf 'tigera operator\n' | sha256sum | cut -d' ' -f1)" \
    "$(printf 'local-path\n' | sha256sum | cut -d' ' -f1)" >>"$work/control-plane.env"
  cat >"$work/worker.env" <<'EOF'
AWS_REGION='eu-west-1'
CA_CERT_FILE='/etc/storekeeper/ca.crt'
CLUSTER_NAME='test'
CONTROL_PLANE_ENDPOINT='10.0.128.10:6443'
CONTROL_PLANE_IP='10.0.128.10'
JOIN_TOKEN_PARAMETER='/storekeeper/test/kubeadm/join-token'
KUBERNETES_MINOR='1.35'
EOF

  # Every stub records its command line, then behaves just enough like the
  # real command for the scripts to go on.
  local name
  for name in modprobe swapoff apt-get apt-mark systemctl crictl gpg sleep snap sysctl \
    kubeadm containerd kubectl aws curl; do
    cat >"$work/stubs/$name" <<EOF
#!/usr/bin/env bash
printf '%s\n' "$name \$*" >>"$work/calls.log"
. "$work/stubs/behaviour.sh"
$name "\$@"
EOF
    chmod 0755 "$work/stubs/$name"
  done
  cp "$work/stubs/kubectl" "$work/helm-dist/linux-amd64/helm"
  sed -i 's/kubectl/helm/g' "$work/helm-dist/linux-amd64/helm"
  cp "$work/helm-dist/linux-amd64/helm" "$work/helm-dist/linux-arm64/helm"
  tar -czf "$work/helm.tgz" -C "$work/helm-dist" linux-amd64 linux-arm64

  cat >"$work/stubs/behaviour.sh" <<EOF
work='$work'
EOF
  cat >>"$work/stubs/behaviour.sh" <<'EOF'
modprobe() { :; }
swapoff() { :; }
apt-get() { :; }
apt-mark() { :; }
systemctl() { :; }
crictl() { :; }
snap() { :; }
sleep() { :; }
sysctl() { if [[ ${1:-} == -n ]]; then echo 1; fi; }
gpg() {
  # curl's stub writes a key's fingerprint as the key.
  if [[ $1 == --show-keys ]]; then
    echo "fpr:::::::::$(cat "$3"):"
    return 0
  fi
  while [[ $# -gt 0 ]]; do
    if [[ $1 == -o ]]; then echo key >"$2"; fi
    shift
  done
}
containerd() {
  case $1 in
    --version) echo "containerd github.com/containerd/containerd 1.7.28" ;;
    config)
      printf '%s\n' 'version = 2' '[plugins."io.containerd.grpc.v1.cri"]' \
        '  sandbox_image = "registry.k8s.io/pause:3.8"' \
        '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]' \
        '    SystemdCgroup = false'
      ;;
  esac
}
kubeadm() {
  case $1 in
    version) echo v1.35.0 ;;
    config) printf '%s\n' registry.k8s.io/kube-apiserver:v1.35.0 registry.k8s.io/pause:3.10.1 ;;
    init)
      cp "$3" "$work/kubeadm-init.yaml"
      mkdir -p /etc/kubernetes/manifests
      echo "apiVersion: v1" >/etc/kubernetes/admin.conf
      echo "kind: Pod" >/etc/kubernetes/manifests/kube-apiserver.yaml
      ;;
    join)
      cp "$3" "$work/kubeadm-join.yaml"
      mkdir -p /etc/kubernetes
      echo "apiVersion: v1" >/etc/kubernetes/kubelet.conf
      ;;
    reset) rm -rf /etc/kubernetes/manifests /etc/kubernetes/*.conf /etc/kubernetes/pki ;;
    kubeconfig) printf 'apiVersion: v1\nkind: Config\nusers: [{name: storekeeper-admin}]\n' ;;
  esac
}
kubectl() {
  case "$*" in
    *"!node-role.kubernetes.io/control-plane"*) printf 'True\nTrue\n' ;;
    "create namespace"*) printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$3" ;;
    "get httproute -n shop shop-edge"*) echo True ;;
    *"-f -"*) cat >>"$work/applied.yaml" ;;
  esac
}
helm() {
  case $1 in
    version) echo v3.19.5 ;;
  esac
}
aws() {
  local name="" value="" prev="" arg
  for arg in "$@"; do
    case $prev in
      --name) name=$arg ;;
      --value) value=$arg ;;
    esac
    prev=$arg
  done
  if [[ -n ${STUB_AWS_FAIL:-} && $name == *"$STUB_AWS_FAIL"* ]]; then
    echo "AccessDeniedException" >&2
    return 254
  fi
  # SSM's state per sandbox (/var is an overlay): the retired CA key.
  case "$2:$name" in
    get-parameter:*join-token) echo "abc123.0123456789abcdef" ;;
    get-parameter:*ca-key)
      if [[ -n ${STUB_CA_RETIRED:-} ]]; then echo "retired: the cluster CA key lives only in /etc/kubernetes/pki on the control plane"; return; fi
      cat /var/lib/stub-ssm/ca-key 2>/dev/null || cat "$work/ca.key"
      ;;
    delete-parameter:*ca-key) mkdir -p /var/lib/stub-ssm && : >/var/lib/stub-ssm/ca-key ;;
    put-parameter:*ca-key) printf '%s\n' "$value" >/var/lib/stub-ssm/ca-key ;;
    put-parameter:*kubeconfig*) cp "${value#file://}" "$work/published-kubeconfig" ;;
    *) return 1 ;;
  esac
}
curl() {
  local out="" url="" prev="" arg
  for arg in "$@"; do
    if [[ $prev == -o ]]; then out=$arg; fi
    case $arg in http*) url=$arg ;; esac
    prev=$arg
  done
  case $url in
    */api/token) echo imds-token ;;
    */meta-data/local-ipv4) echo "${STUB_NODE_IP:-10.0.128.10}" ;;
    */readyz) if [[ -n ${STUB_API_DOWN:-} ]]; then return 7; fi ;;
    *Release.key) echo "${STUB_KEY_FINGERPRINT:-DE15B14486CD377B9E876E1A234654DA9A296436}" >"$out" ;;
    *cert-manager-keyring*) echo "${STUB_CM_KEY_FINGERPRINT:-1020CF3C033D4F35BAE1C19E1226061C665DF13E}" >"$out" ;;
    *.tar.gz) cp "$work/helm.tgz" "$out" ;;
    *.tar.gz.sha256sum) printf '%s  %s\n' "$(sha256sum "$work/helm.tgz" | cut -d' ' -f1)" "${url##*/}" >"$out" ;;
    */operator-crds.yaml) printf 'calico crds\n%s' "${STUB_TAMPER:-}" >"$out" ;;
    */tigera-operator.yaml) printf 'tigera operator\n' >"$out" ;;
    */local-path-storage.yaml) printf 'local-path\n' >"$out" ;;
    *) : ;;
  esac
}
EOF
}

# ---------------------------------------------------------------------------
# One isolated run: fresh overlays, stubs first on PATH, the script, a verdict
# ---------------------------------------------------------------------------

# sandbox NAME SCRIPT ENV_FILE [VAR=VALUE...] [-- COMMANDS TO RUN AFTER]
sandbox() {
  local name=$1 script=$2 env_file=$3
  shift 3
  local dir="$work/$name"
  mkdir -p "$dir"
  unshare -m env "$@" bash -s "$dir" "$script" "$env_file" "$work" "$here" <<'INNER'
set -euo pipefail
dir=$1 script=$2 env_file=$3 work=$4 here=$5
for path in /etc /opt /root /usr/local /var; do
  mkdir -p "$dir/upper$path" "$dir/work$path"
  mount -t overlay overlay -o "lowerdir=$path,upperdir=$dir/upper$path,workdir=$dir/work$path" "$path"
done
install -D -m 0755 -t /usr/local/bin "$work"/stubs/*
rm -f /usr/local/bin/behaviour.sh /usr/local/bin/helm
install -D -m 0644 "$work/ca.crt" /etc/storekeeper/ca.crt
install -D -m 0644 "${STORE_FIXTURE:-$work/example-store.yaml}" /etc/storekeeper/example-store.yaml
install -D -m 0600 "$env_file" /etc/storekeeper/bootstrap.env
status=0
for run in ${RUNS:-1}; do
  : >"$work/calls.log"
  "$here/$script" >"$dir/output.$run" 2>&1 || status=$?
  cp "$work/calls.log" "$dir/calls.$run"
  echo "$status" >"$dir/status.$run"
done
cp -a /var/lib/storekeeper "$dir/state" 2>/dev/null || true
cp /etc/containerd/config.toml "$dir/containerd.toml" 2>/dev/null || true
cp /etc/kubernetes/pki/ca.key "$dir/installed-ca.key" 2>/dev/null || true
cp /var/log/storekeeper-bootstrap.log "$dir/bootstrap.log" 2>/dev/null || true
INNER
}

contains() { grep -qF -- "$2" "$1"; }
lacks() { ! grep -qF -- "$2" "$1"; }

fixtures

echo "== reading the example Store: Terraform's yamlencode and a hand-written file"
# shellcheck source=./manifest.sh
. "$here/manifest.sh"
for form in example hand; do
  f="$work/${form}-store.yaml"
  check "${form}: metadata.name (not a nested label)" test "$(manifest_value "$f" metadata.name)" = shop
  check "${form}: metadata.namespace unquoted" test "$(manifest_value "$f" metadata.namespace)" = shop
  check "${form}: spec.ingress.tls.secretName" test "$(manifest_value "$f" spec.ingress.tls.secretName)" = shop-tls
  check "${form}: spec.ingress.gateway" test "$(manifest_value "$f" spec.ingress.gateway.name)/$(manifest_value "$f" spec.ingress.gateway.namespace)/$(manifest_value "$f" spec.ingress.gateway.sectionName)" = shop/storekeeper-edge/https
  check "${form}: an absent key reads empty" test -z "$(manifest_value "$f" spec.ingress.className)"
done
check "no gateway: reads empty" test -z "$(manifest_value "$work/no-gateway-store.yaml" spec.ingress.gateway.name)"

echo "== control plane (the Store as Terraform writes it), twice"
sandbox cp control-plane.sh "$work/control-plane.env" RUNS="1 2"
d="$work/cp"
check "control-plane.sh exits 0" test "$(cat "$d/status.1")" = 0
check "second run exits 0" test "$(cat "$d/status.2")" = 0
check "bootstrap.done is left" test -f "$d/state/bootstrap.done"
check "no bootstrap.failed" test ! -e "$d/state/bootstrap.failed"
check "kubeadm init uses the config and hides the token" contains "$d/calls.1" "kubeadm init --config /etc/storekeeper/kubeadm-init.yaml --skip-token-print"
check "init config: Terraform's token" contains "$work/kubeadm-init.yaml" 'token: "abc123.0123456789abcdef"'
check "init config: token TTL" contains "$work/kubeadm-init.yaml" 'ttl: "24h"'
check "init config: pod CIDR" contains "$work/kubeadm-init.yaml" 'podSubnet: "192.168.0.0/16"'
check "init config: API certificate for the SSM tunnel" contains "$work/kubeadm-init.yaml" '- "127.0.0.1"'
check "init config: version from kubeadm" contains "$work/kubeadm-init.yaml" 'kubernetesVersion: "v1.35.0"'
check "init config: node IP" contains "$work/kubeadm-init.yaml" 'value: "10.0.128.10"'
check "the CA key from SSM is installed" cmp -s "$d/installed-ca.key" "$work/ca.key"
check "containerd: systemd cgroups" contains "$d/containerd.toml" "SystemdCgroup = true"
check "containerd: kubeadm's pause image" contains "$d/containerd.toml" 'sandbox_image = "registry.k8s.io/pause:3.10.1"'
check "kubeconfig published to SSM" contains "$d/calls.1" "--name /storekeeper/test/kubeconfig/admin --type SecureString --key-id arn:aws:kms:eu-west-1:123456789012:key/test --tier Advanced --overwrite"
check "the pkgs.k8s.io key's fingerprint is checked" contains "$d/calls.1" "gpg --show-keys --with-colons /tmp/kubernetes-release.key"
check "the CA key is retired from SSM (history and all)" contains "$d/calls.1" "aws ssm delete-parameter --region eu-west-1 --name /storekeeper/test/kubeadm/ca-key"
check "a marker takes its place (no Terraform drift)" contains "$d/calls.1" "--name /storekeeper/test/kubeadm/ca-key --type SecureString"
check "second run: already retired" contains "$d/output.2" "already retired"
check "second run deletes nothing" lacks "$d/calls.2" "delete-parameter"
check "kubeconfig: from the cluster's stored ClusterConfiguration" contains "$d/calls.1" "kubectl get configmap -n kube-system kubeadm-config -o jsonpath={.data.ClusterConfiguration}"
check "kubeconfig: a 24h cluster-admin certificate" contains "$d/calls.1" "--client-name storekeeper-admin --org kubeadm:cluster-admins --validity-period 24h"
check "kubeconfig: the parameter expires with it" contains "$d/calls.1" '--policies [{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"'
check "kubeconfig: what SSM got is the new user's" contains "$work/published-kubeconfig" "storekeeper-admin"
check "Calico CRDs downloaded" contains "$d/calls.1" "calico/v3.31.3/manifests/operator-crds.yaml"
check "Calico applied from the verified copies" contains "$d/calls.1" "kubectl apply --server-side --force-conflicts -f /etc/storekeeper/manifests/calico-v3.31.3-tigera-operator.yaml"
check "Calico VXLAN pool" contains "$d/upper/etc/storekeeper/calico-installation.yaml" "encapsulation: VXLAN"
check "local-path provisioner pinned" contains "$d/calls.1" "local-path-provisioner/v0.0.34/deploy/local-path-storage.yaml"
check "local-path applied from the verified copy" contains "$d/calls.1" "kubectl apply -f /etc/storekeeper/manifests/local-path-storage-v0.0.34.yaml"
check "helm downloaded and checksum-verified" contains "$d/output.1" "OK"
check "edge: no ingress-nginx" lacks "$d/calls.1" "ingress-nginx"
check "edge: Gateway API CRDs from the pinned chart" contains "$d/calls.1" "helm template eg-crds oci://docker.io/envoyproxy/gateway-crds-helm@sha256:"
check "edge: Gateway API standard channel" contains "$d/calls.1" "--set crds.gatewayAPI.channel=standard"
check "edge: Envoy Gateway pinned by digest" contains "$d/calls.1" "helm upgrade --install eg oci://docker.io/envoyproxy/gateway-helm@sha256:"
check "edge: Envoy Gateway image pinned by digest" contains "$d/calls.1" "global.images.envoyGateway.image=docker.io/envoyproxy/gateway:v1.8.3@sha256:"
check "edge: GatewayClass accepted" contains "$d/calls.1" "kubectl wait --for=condition=Accepted --timeout=300s gatewayclass/storekeeper"
check "TLS: cert-manager with Gateway API support" contains "$d/calls.1" "--set config.enableGatewayAPI=true"
check "TLS: cert-manager's chart signature verified" contains "$d/calls.1" "helm upgrade --install cert-manager oci://quay.io/jetstack/charts/cert-manager --version v1.21.1 --verify --keyring /tmp/"
check "TLS: certificate before the Store" contains "$d/output.1" "certificate shop/shop-tls"
check "edge: waits for the operator's HTTPRoute" contains "$d/calls.1" "kubectl get httproute -n shop shop-edge"
check "edge: the Gateway accepted it" contains "$d/output.1" "HTTPRoute shop/shop-edge is Accepted by Gateway storekeeper-edge/shop"
check "edge: no route derived from an Ingress" lacks "$d/calls.1" "get ingress"
check "edge: the Store's namespace may attach to the Gateway" contains "$d/calls.1" "kubectl label namespace shop storekeeper.dev/gateway=shop --overwrite"
check "edge: HTTP only redirects to HTTPS" contains "$work/applied.yaml" "scheme: https"
check "edge: certificate from the ACME issuer" contains "$work/applied.yaml" "name: storekeeper-acme"
check "operator from the OCI chart" contains "$d/calls.1" "helm upgrade --install storekeeper oci://ghcr.io/storekeeper-dev/charts/storekeeper"
check "operator image tag passed through quoting" contains "$d/calls.1" "image.tag=it's-a-tag"
check "example Store in its own namespace" contains "$d/calls.1" "kubectl apply -n shop -f /etc/storekeeper/example-store.yaml"
check "second run skips kubeadm init" lacks "$d/calls.2" "kubeadm init"
check "second run says so" contains "$d/output.2" "already initialised"
check "the token never reaches the log" lacks "$d/bootstrap.log" "0123456789abcdef"

echo "== control plane with a hand-written Store"
sandbox hand control-plane.sh "$work/control-plane.env" STORE_FIXTURE="$work/hand-store.yaml"
d="$work/hand"
check "control-plane.sh exits 0" test "$(cat "$d/status.1")" = 0
check "the Store is applied in its namespace" contains "$d/calls.1" "kubectl apply -n shop -f /etc/storekeeper/example-store.yaml"
check "its HTTPRoute is waited for" contains "$d/calls.1" "kubectl get httproute -n shop shop-edge"

echo "== an example Store that does not name the Gateway"
sandbox no-gateway control-plane.sh "$work/control-plane.env" STORE_FIXTURE="$work/no-gateway-store.yaml"
d="$work/no-gateway"
check "control-plane.sh exits non-zero" test "$(cat "$d/status.1")" != 0
check "the refusing step is named" contains "$d/output.1" "FAILED: step 'example Store /etc/storekeeper/example-store.yaml: TLS and Gateway'"
check "it says what the Store must set" contains "$d/output.1" "it must set spec.ingress.gateway: {name: shop, namespace: storekeeper-edge, sectionName: https}"
check "the Store is never applied" lacks "$d/calls.1" "kubectl apply -n shop -f /etc/storekeeper/example-store.yaml"

echo "== a download that does not match its pin"
sandbox tampered control-plane.sh "$work/control-plane.env" STUB_TAMPER=extra
d="$work/tampered"
check "control-plane.sh exits non-zero" test "$(cat "$d/status.1")" != 0
check "it names the file and both checksums" contains "$d/output.1" "checksum mismatch for https://raw.githubusercontent.com/projectcalico/calico/v3.31.3/manifests/operator-crds.yaml: expected"
check "nothing of Calico is applied" lacks "$d/calls.1" "calico-v3.31.3-operator-crds.yaml"

echo "== a pkgs.k8s.io key with another fingerprint"
sandbox wrong-key control-plane.sh "$work/control-plane.env" STUB_KEY_FINGERPRINT=0000000000000000000000000000000000000000
d="$work/wrong-key"
check "control-plane.sh exits non-zero" test "$(cat "$d/status.1")" != 0
check "it says why" contains "$d/output.1" "the pkgs.k8s.io signing key has fingerprint '0000000000000000000000000000000000000000'"
check "apt never gets the key" lacks "$d/calls.1" "gpg --dearmor"

echo "== a new control plane for a cluster whose CA key was retired"
sandbox retired control-plane.sh "$work/control-plane.env" STUB_CA_RETIRED=1
d="$work/retired"
check "control-plane.sh exits non-zero" test "$(cat "$d/status.1")" != 0
check "it says a new cluster is needed" contains "$d/output.1" "a new control plane means a new cluster"
check "kubeadm init never ran" lacks "$d/calls.1" "kubeadm init"

echo "== a cert-manager keyring with another fingerprint"
sandbox wrong-cm-key control-plane.sh "$work/control-plane.env" STUB_CM_KEY_FINGERPRINT=1111111111111111111111111111111111111111
d="$work/wrong-cm-key"
check "control-plane.sh exits non-zero" test "$(cat "$d/status.1")" != 0
check "it says why" contains "$d/output.1" "cert-manager's keyring has fingerprint '1111111111111111111111111111111111111111'"
check "cert-manager is never installed" lacks "$d/calls.1" "helm upgrade --install cert-manager"

echo "== an example Store without TLS settings"
grep -v -e '^SHOP_HOST=' -e '^ACME_EMAIL=' "$work/control-plane.env" >"$work/no-tls.env"
sandbox no-tls control-plane.sh "$work/no-tls.env"
d="$work/no-tls"
check "control-plane.sh exits non-zero" test "$(cat "$d/status.1")" != 0
check "it refuses to expose the shop over plain HTTP" contains "$d/output.1" "refusing to expose the example Store without TLS"
check "the Store is never applied" lacks "$d/calls.1" "kubectl apply -n shop -f /etc/storekeeper/example-store.yaml"
check "no certificate is requested" lacks "$d/calls.1" "cert-manager"

echo "== worker"
sandbox worker worker.sh "$work/worker.env" STUB_NODE_IP=10.0.192.20 RUNS="1 2"
d="$work/worker"
check "worker.sh exits 0" test "$(cat "$d/status.1")" = 0
check "join config: CA pin computed from the certificate" contains "$work/kubeadm-join.yaml" "\"${expected_hash}\""
check "join config: endpoint" contains "$work/kubeadm-join.yaml" 'apiServerEndpoint: "10.0.128.10:6443"'
check "join config: node IP" contains "$work/kubeadm-join.yaml" 'value: "10.0.192.20"'
check "waits for the API with the CA" contains "$d/calls.1" "--cacert /etc/storekeeper/ca.crt https://10.0.128.10:6443/readyz"
check "second run skips the join" lacks "$d/calls.2" "kubeadm join"

echo "== a worker whose control plane never answers"
sandbox no-api worker.sh "$work/worker.env" STUB_API_DOWN=1 API_WAIT_SECONDS=1
d="$work/no-api"
check "worker.sh exits non-zero" test "$(cat "$d/status.1")" != 0
check "it says why" contains "$d/output.1" "the control plane did not answer within 1s"
check "the failed step is named" contains "$d/output.1" "FAILED: step 'wait for the Kubernetes API at 10.0.128.10:6443'"
check "kubeadm join never ran" lacks "$d/calls.1" "kubeadm join"

echo "== a failing step"
sandbox failing control-plane.sh "$work/control-plane.env" STUB_AWS_FAIL=ca-key
d="$work/failing"
check "control-plane.sh exits non-zero" test "$(cat "$d/status.1")" != 0
check "the failed step is named" contains "$d/output.1" "FAILED: step 'cluster CA (pre-generated by Terraform)'"
check "the cause is explained" contains "$d/output.1" "cannot read SSM parameter /storekeeper/test/kubeadm/ca-key"
check "bootstrap.failed is left" contains "$d/state/bootstrap.failed" "cluster CA"
check "kubeadm init never ran" lacks "$d/calls.1" "kubeadm init"

echo "${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]
