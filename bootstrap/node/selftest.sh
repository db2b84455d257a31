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
  printf 'apiVersion: storekeeper.dev/v1alpha1\nkind: Store\nmetadata:\n  name: shop\n  namespace: shop\nspec:\n  version: "0.1.0"\n' \
    >"$work/example-store.yaml"

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
HELM_VERSION='v3.19.5'
INGRESS_NGINX_CHART_VERSION='4.14.3'
INGRESS_PUBLISH_ADDRESS='test-ingress-0123.elb.eu-west-1.amazonaws.com'
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
EOF
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
  esac
}
kubectl() {
  case "$*" in
    *"!node-role.kubernetes.io/control-plane"*) printf 'True\nTrue\n' ;;
    "create namespace"*) printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$3" ;;
    *"-f -"*) cat >/dev/null ;;
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
  case "$2:$name" in
    get-parameter:*join-token) echo "abc123.0123456789abcdef" ;;
    get-parameter:*ca-key) cat "$work/ca.key" ;;
    put-parameter:*) cp "${value#file://}" "$work/published-kubeconfig" ;;
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
    *Release.key) echo key >"$out" ;;
    *.tar.gz) cp "$work/helm.tgz" "$out" ;;
    *.tar.gz.sha256sum) printf '%s  %s\n' "$(sha256sum "$work/helm.tgz" | cut -d' ' -f1)" "${url##*/}" >"$out" ;;
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
install -D -m 0644 "$work/example-store.yaml" /etc/storekeeper/example-store.yaml
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

echo "== control plane, twice"
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
check "Calico CRDs, then the operator" contains "$d/calls.1" "calico/v3.31.3/manifests/operator-crds.yaml"
check "Calico VXLAN pool" contains "$d/upper/etc/storekeeper/calico-installation.yaml" "encapsulation: VXLAN"
check "local-path provisioner pinned" contains "$d/calls.1" "local-path-provisioner/v0.0.34/deploy/local-path-storage.yaml"
check "helm downloaded and checksum-verified" contains "$d/output.1" "OK"
check "ingress-nginx: DaemonSet with hostPorts" contains "$d/calls.1" "--set controller.kind=DaemonSet --set controller.hostPort.enabled=true"
check "ingress-nginx: status shows the NLB" contains "$d/calls.1" "publish-status-address=test-ingress-0123.elb.eu-west-1.amazonaws.com"
check "operator from the OCI chart" contains "$d/calls.1" "helm upgrade --install storekeeper oci://ghcr.io/storekeeper-dev/charts/storekeeper"
check "operator image tag passed through quoting" contains "$d/calls.1" "image.tag=it's-a-tag"
check "example Store in its own namespace" contains "$d/calls.1" "kubectl apply -n shop -f /etc/storekeeper/example-store.yaml"
check "second run skips kubeadm init" lacks "$d/calls.2" "kubeadm init"
check "second run says so" contains "$d/output.2" "already initialised"
check "the token never reaches the log" lacks "$d/bootstrap.log" "0123456789abcdef"

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
