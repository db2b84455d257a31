# Everything the control plane and the workers must agree on before either
# exists, generated here so that no one copies a token or a hash by hand.
#
#   - the kubeadm bootstrap token, "[a-z0-9]{6}.[a-z0-9]{16}";
#   - the cluster CA (key and self-signed certificate). The control plane
#     starts kubeadm with this CA, and each worker derives the CA public key
#     hash that `kubeadm join` pins (caCertHashes) from the certificate, so
#     joining verifies the API server without a manual step and without
#     --discovery-token-unsafe-skip-ca-verification.
#
# The two secrets (token, CA key) go to SSM Parameter Store as SecureStrings
# under the cluster's KMS key; the nodes read them at boot with their
# instance role. User data carries only their names and the public CA
# certificate, so nothing secret is visible through DescribeInstanceAttribute
# or the instance metadata service. Terraform state still holds them: keep
# state in an encrypted backend (backend.tf.example, docs/cluster.md).

resource "random_password" "token_id" {
  length  = 6
  upper   = false
  lower   = true
  numeric = true
  special = false
}

resource "random_password" "token_secret" {
  length  = 16
  upper   = false
  lower   = true
  numeric = true
  special = false
}

resource "tls_private_key" "cluster_ca" {
  algorithm = "RSA"
  rsa_bits  = 2048
}

resource "tls_self_signed_cert" "cluster_ca" {
  private_key_pem = tls_private_key.cluster_ca.private_key_pem

  subject {
    common_name = "kubernetes"
  }

  # kubeadm's own CA lifetime: ten years.
  validity_period_hours = 87600
  is_ca_certificate     = true

  allowed_uses = [
    "cert_signing",
    "crl_signing",
    "digital_signature",
    "key_encipherment",
  ]
}

locals {
  join_token = "${random_password.token_id.result}.${random_password.token_secret.result}"

  ssm_prefix         = "/storekeeper/${var.name}"
  ssm_join_token     = "${local.ssm_prefix}/kubeadm/join-token"
  ssm_ca_private_key = "${local.ssm_prefix}/kubeadm/ca-key"
}

resource "aws_ssm_parameter" "join_token" {
  name        = local.ssm_join_token
  description = "kubeadm bootstrap token of cluster ${var.name} (read by every node at boot)"
  type        = "SecureString"
  key_id      = aws_kms_key.cluster.arn
  value       = local.join_token
}

# Short-lived: once kubeadm init has finished, the control plane deletes
# this parameter (and with it every version SSM kept) and puts it back
# holding only a "retired" marker. Terraform ignores the value and the
# description, so a later apply neither restores the key nor reports drift.
resource "aws_ssm_parameter" "ca_private_key" {
  name        = local.ssm_ca_private_key
  description = "Cluster CA private key of ${var.name} (read by the control plane at boot, then retired)"
  type        = "SecureString"
  key_id      = aws_kms_key.cluster.arn
  value       = tls_private_key.cluster_ca.private_key_pem

  lifecycle {
    ignore_changes = [value, description]
  }
}

# The control plane publishes a cluster-admin kubeconfig here once kubeadm
# init has run, so an operator fetches it with one `aws ssm get-parameter`
# (see the kubeconfig_command output). Its certificate lives
# admin_kubeconfig_ttl_hours, and an Expiration policy makes SSM delete the
# parameter at the same moment (the next apply puts the placeholder back).
# Terraform creates the parameter with a placeholder and ignores later
# values, so `terraform destroy` removes it.
# (A refresh does copy the current value into state; that adds no exposure,
# the state already holds the CA key that can mint any credential.)
# Advanced tier: a kubeconfig with embedded client certificates exceeds the
# 4 KB standard limit.
resource "aws_ssm_parameter" "admin_kubeconfig" {
  name        = "${local.ssm_prefix}/kubeconfig/admin"
  description = "cluster-admin kubeconfig of ${var.name}, written by the control plane after kubeadm init"
  type        = "SecureString"
  tier        = "Advanced"
  key_id      = aws_kms_key.cluster.arn
  value       = "pending: the control plane has not finished kubeadm init"

  lifecycle {
    ignore_changes = [value]
  }
}
