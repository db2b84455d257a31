# One control plane and var.worker_count workers, all in the private subnets,
# without public addresses or SSH keys: operators reach them through SSM
# Session Manager. Each machine's user data (cloud-init) writes the bootstrap
# scripts from ../bootstrap/node and a small environment file, then runs
# control-plane.sh or worker.sh, which build the kubeadm cluster on their own.

# Ubuntu 24.04 LTS from Canonical: the SSM agent is preinstalled, which the
# "no SSH, SSM only" access model needs (Debian's images ship without it).
data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${var.architecture}-server-*"]
  }

  filter {
    name   = "architecture"
    values = [local.ami_architecture]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

# The instance types, to fail at plan time rather than at boot when a type
# does not match the architecture or is too small for kubeadm.
data "aws_ec2_instance_type" "node" {
  for_each = {
    control-plane = var.control_plane_instance_type
    worker        = var.worker_instance_type
  }

  instance_type = each.value
}

locals {
  ami_architecture = var.architecture == "amd64" ? "x86_64" : "arm64"
}

# ---------------------------------------------------------------------------
# Instance roles: SSM Session Manager, and read access to exactly the
# parameters each role needs (decrypted through SSM only).
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

locals {
  # Parameters each role may read and decrypt. AmazonSSMManagedInstanceCore
  # allows ssm:GetParameter on every parameter, so what really limits a role
  # is kms:Decrypt, granted per parameter through the encryption context
  # Parameter Store uses (PARAMETER_ARN), plus an explicit deny of the
  # parameters a role must never read.
  node_roles = {
    control-plane = [aws_ssm_parameter.join_token.arn, aws_ssm_parameter.ca_private_key.arn]
    worker        = [aws_ssm_parameter.join_token.arn]
  }
  node_forbidden_parameters = {
    control-plane = []
    worker        = [aws_ssm_parameter.ca_private_key.arn, aws_ssm_parameter.admin_kubeconfig.arn]
  }
}

resource "aws_iam_role" "node" {
  for_each = local.node_roles

  name_prefix        = "${var.name}-${each.key}-"
  description        = "Storekeeper ${each.key} node of cluster ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy_attachment" "node_ssm" {
  for_each = local.node_roles

  role       = aws_iam_role.node[each.key].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "node_secrets" {
  for_each = local.node_roles

  statement {
    sid       = "ReadBootstrapParameters"
    actions   = ["ssm:GetParameter"]
    resources = each.value
  }

  statement {
    sid       = "DecryptOwnParametersThroughSsmOnly"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.cluster.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${data.aws_region.current.name}.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:PARAMETER_ARN"
      values   = each.value
    }
  }

  dynamic "statement" {
    for_each = length(local.node_forbidden_parameters[each.key]) > 0 ? [1] : []

    content {
      sid       = "NeverReadOtherSecrets"
      effect    = "Deny"
      actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory"]
      resources = local.node_forbidden_parameters[each.key]
    }
  }

  # The control plane alone publishes the admin kubeconfig, and retires the
  # CA key after kubeadm init (delete, then a marker in its place).
  dynamic "statement" {
    for_each = each.key == "control-plane" ? [1] : []

    content {
      sid       = "PublishAdminKubeconfig"
      actions   = ["ssm:PutParameter"]
      resources = [aws_ssm_parameter.admin_kubeconfig.arn]
    }
  }

  dynamic "statement" {
    for_each = each.key == "control-plane" ? [1] : []

    content {
      sid       = "RetireCaKey"
      actions   = ["ssm:DeleteParameter", "ssm:PutParameter"]
      resources = [aws_ssm_parameter.ca_private_key.arn]
    }
  }

  dynamic "statement" {
    for_each = each.key == "control-plane" ? [1] : []

    content {
      sid       = "EncryptThroughSsmOnly"
      actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
      resources = [aws_kms_key.cluster.arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${data.aws_region.current.name}.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:PARAMETER_ARN"
        values   = [aws_ssm_parameter.admin_kubeconfig.arn, aws_ssm_parameter.ca_private_key.arn]
      }
    }
  }
}

resource "aws_iam_role_policy" "node_secrets" {
  for_each = local.node_roles

  name   = "read-bootstrap-secrets"
  role   = aws_iam_role.node[each.key].id
  policy = data.aws_iam_policy_document.node_secrets[each.key].json
}

resource "aws_iam_instance_profile" "node" {
  for_each = local.node_roles

  name_prefix = "${var.name}-${each.key}-"
  role        = aws_iam_role.node[each.key].name
}

# ---------------------------------------------------------------------------
# User data
# ---------------------------------------------------------------------------

locals {
  bootstrap_dir = "${path.module}/../bootstrap/node"

  # HTTPS for the example shop: a host name and an ACME account. Without
  # both, no Store is exposed (the default picks none; an explicit path
  # fails the control plane's precondition).
  tls_enabled = var.shop_host != "" && var.acme_email != ""

  example_store_candidates = [for p in ["store.yaml", "minimal.yaml"] : "${path.module}/../examples/${p}"]
  example_store_found      = [for p in local.example_store_candidates : p if fileexists(p)]
  example_store_default    = local.tls_enabled ? try(local.example_store_found[0], "") : ""
  example_store_path       = var.example_store_path != null ? var.example_store_path : local.example_store_default
  example_store_source     = local.example_store_path == "" ? "" : try(file(local.example_store_path), "")
  example_store_doc        = local.example_store_source == "" ? null : yamldecode(local.example_store_source)
  example_store_name       = try(local.example_store_doc.metadata.name, "shop")
  # The Gateway the bootstrap creates (edge.sh: EDGE_NAMESPACE, HTTPS
  # listener) and the example Store attaches to: one value for both, so
  # they cannot disagree.
  edge_gateway = {
    name        = "shop"
    namespace   = "storekeeper-edge"
    sectionName = "https"
  }
  # The certificate's Secret, in the Store's namespace: the Store names it
  # (its URL then says https and its session cookies are Secure) and the
  # Gateway's HTTPS listener serves it.
  shop_tls_secret = "${local.example_store_name}-tls"
  # The Store as applied: its host is shop_host, its TLS is that Secret, the
  # operator renders its HTTPRoute on the Gateway above (no Ingress), and
  # its NetworkPolicies admit the edge's Envoy (in envoy-gateway-system).
  example_store = local.example_store_doc == null ? "" : yamlencode(merge(local.example_store_doc, {
    spec = merge(local.example_store_doc.spec, {
      ingress = merge(try(local.example_store_doc.spec.ingress, {}), {
        host                = var.shop_host
        controllerNamespace = "envoy-gateway-system"
        tls                 = { secretName = local.shop_tls_secret }
        gateway             = local.edge_gateway
      })
    })
  }))

  common_env = {
    CLUSTER_NAME           = var.name
    AWS_REGION             = var.region
    KUBERNETES_MINOR       = var.kubernetes_minor_version
    CONTROL_PLANE_IP       = local.control_plane_ip
    CONTROL_PLANE_ENDPOINT = "${local.control_plane_ip}:6443"
    JOIN_TOKEN_PARAMETER   = local.ssm_join_token
    CA_CERT_FILE           = "/etc/storekeeper/ca.crt"
  }

  control_plane_env = merge(local.common_env, {
    CA_KEY_PARAMETER               = local.ssm_ca_private_key
    KUBECONFIG_PARAMETER           = aws_ssm_parameter.admin_kubeconfig.name
    KUBECONFIG_KMS_KEY             = aws_kms_key.cluster.arn
    ADMIN_KUBECONFIG_TTL_HOURS     = tostring(var.admin_kubeconfig_ttl_hours)
    JOIN_TOKEN_TTL                 = var.join_token_ttl
    POD_CIDR                       = var.pod_cidr
    SERVICE_CIDR                   = var.service_cidr
    CALICO_VERSION                 = var.calico_version
    CALICO_CRDS_SHA256             = var.calico_manifest_sha256.operator_crds
    CALICO_OPERATOR_SHA256         = var.calico_manifest_sha256.tigera_operator
    CALICO_ENCAPSULATION           = var.calico_encapsulation
    HELM_VERSION                   = var.helm_version
    SHOP_HOST                      = local.tls_enabled ? var.shop_host : ""
    ACME_EMAIL                     = local.tls_enabled ? var.acme_email : ""
    ACME_SERVER                    = var.acme_server
    SHOP_TLS_SECRET                = local.tls_enabled ? local.shop_tls_secret : ""
    LOCAL_PATH_PROVISIONER_VERSION = var.local_path_provisioner_version
    LOCAL_PATH_PROVISIONER_SHA256  = var.local_path_provisioner_sha256
    EDGE_GATEWAY_NAME              = local.edge_gateway.name
    EDGE_NAMESPACE                 = local.edge_gateway.namespace
    EXPECTED_WORKERS               = tostring(var.worker_count)
    OPERATOR_CHART                 = var.operator_chart
    OPERATOR_CHART_VERSION         = var.operator_chart_version
    OPERATOR_IMAGE_REPOSITORY      = var.operator_image_repository
    OPERATOR_IMAGE_TAG             = var.operator_image_tag
    EXAMPLE_STORE_FILE             = local.example_store == "" ? "" : "/etc/storekeeper/example-store.yaml"
    EXAMPLE_STORE_NAMESPACE        = var.example_store_namespace
  })

  # KEY='value' lines; single quotes inside a value are escaped for the shell.
  env_file = {
    control-plane = join("", [for k in sort(keys(local.control_plane_env)) : "${k}='${replace(local.control_plane_env[k], "'", "'\\''")}'\n"])
    worker        = join("", [for k in sort(keys(local.common_env)) : "${k}='${replace(local.common_env[k], "'", "'\\''")}'\n"])
  }

  bootstrap_files = {
    control-plane = ["common.sh", "edge.sh", "manifest.sh", "control-plane.sh"]
    worker        = ["common.sh", "worker.sh"]
  }

  write_files = {
    for role, scripts in local.bootstrap_files : role => concat(
      [for s in scripts : {
        path        = "/opt/storekeeper/bootstrap/${s}"
        permissions = "0755"
        owner       = "root:root"
        content     = file("${local.bootstrap_dir}/${s}")
      }],
      [
        {
          path        = "/etc/storekeeper/bootstrap.env"
          permissions = "0600"
          owner       = "root:root"
          content     = local.env_file[role]
        },
        {
          # Public half of the cluster CA: enough for workers to pin it.
          path        = "/etc/storekeeper/ca.crt"
          permissions = "0644"
          owner       = "root:root"
          content     = tls_self_signed_cert.cluster_ca.cert_pem
        },
      ],
      role == "control-plane" && local.example_store != "" ? [{
        path        = "/etc/storekeeper/example-store.yaml"
        permissions = "0644"
        owner       = "root:root"
        content     = local.example_store
      }] : [],
    )
  }
}

data "cloudinit_config" "node" {
  for_each = local.bootstrap_files

  gzip          = true
  base64_encode = true

  part {
    filename     = "storekeeper.cfg"
    content_type = "text/cloud-config"
    content      = "#cloud-config\n${yamlencode({ write_files = local.write_files[each.key] })}"
  }

  part {
    filename     = "storekeeper-bootstrap.sh"
    content_type = "text/x-shellscript"
    content      = "#!/bin/bash\nexec /opt/storekeeper/bootstrap/${each.key}.sh\n"
  }
}

# ---------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------

resource "aws_instance" "control_plane" {
  ami                         = data.aws_ami.ubuntu.id
  instance_type               = var.control_plane_instance_type
  subnet_id                   = aws_subnet.private[0].id
  private_ip                  = local.control_plane_ip
  vpc_security_group_ids      = [aws_security_group.nodes.id, aws_security_group.control_plane.id]
  iam_instance_profile        = aws_iam_instance_profile.node["control-plane"].name
  associate_public_ip_address = false
  monitoring                  = var.detailed_monitoring
  ebs_optimized               = true
  user_data_base64            = data.cloudinit_config.node["control-plane"].rendered

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1 # pods cannot reach the instance's credentials
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.control_plane_volume_size
    encrypted             = true
    delete_on_termination = true
  }

  tags = {
    Name                   = "${var.name}-control-plane"
    "storekeeper.dev/role" = "control-plane"
  }

  lifecycle {
    # A new Ubuntu image or a changed bootstrap input must not replace a
    # running cluster: user data runs once, day-2 changes go through
    # kubectl/helm. Replace the instance to rebuild it on purpose.
    ignore_changes = [ami, user_data_base64]

    precondition {
      condition     = contains(data.aws_ec2_instance_type.node["control-plane"].supported_architectures, local.ami_architecture)
      error_message = "control_plane_instance_type does not run ${local.ami_architecture} (architecture = \"${var.architecture}\")."
    }

    precondition {
      condition     = data.aws_ec2_instance_type.node["control-plane"].default_vcpus >= 2 && data.aws_ec2_instance_type.node["control-plane"].memory_size >= 2048
      error_message = "kubeadm needs at least 2 vCPUs and 2 GiB of memory on the control plane."
    }

    precondition {
      # Behind a public load balancer a shop serves logins over HTTPS only.
      condition     = local.example_store == "" || local.tls_enabled
      error_message = "An example Store is exposed only with TLS: set shop_host and acme_email (a certificate from acme_server), or example_store_path = \"\"."
    }

    precondition {
      # EC2 accepts 16 KB of user data before base64 (gzip keeps ours near 12).
      condition     = length(data.cloudinit_config.node["control-plane"].rendered) <= 21844
      error_message = "The control plane's user data exceeds EC2's 16 KB limit: is the example Store manifest (example_store_path) very large?"
    }
  }

  # Bootstrap needs the Internet (packages, images) and its secrets at boot.
  depends_on = [
    aws_route_table_association.private,
    aws_nat_gateway.this,
    aws_iam_role_policy.node_secrets,
    aws_iam_role_policy_attachment.node_ssm,
  ]
}

resource "aws_instance" "worker" {
  count = var.worker_count

  ami                         = data.aws_ami.ubuntu.id
  instance_type               = var.worker_instance_type
  subnet_id                   = aws_subnet.private[count.index % 2].id
  vpc_security_group_ids      = [aws_security_group.nodes.id, aws_security_group.workers.id]
  iam_instance_profile        = aws_iam_instance_profile.node["worker"].name
  associate_public_ip_address = false
  monitoring                  = var.detailed_monitoring
  ebs_optimized               = true
  user_data_base64            = data.cloudinit_config.node["worker"].rendered

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1 # pods cannot reach the instance's credentials
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.worker_volume_size
    encrypted             = true
    delete_on_termination = true
  }

  tags = {
    Name                   = "${var.name}-worker-${count.index + 1}"
    "storekeeper.dev/role" = "worker"
  }

  lifecycle {
    ignore_changes = [ami, user_data_base64]

    precondition {
      condition     = contains(data.aws_ec2_instance_type.node["worker"].supported_architectures, local.ami_architecture)
      error_message = "worker_instance_type does not run ${local.ami_architecture} (architecture = \"${var.architecture}\")."
    }

    precondition {
      condition     = data.aws_ec2_instance_type.node["worker"].memory_size >= 2048
      error_message = "Workers need at least 2 GiB of memory."
    }

    precondition {
      condition     = length(data.cloudinit_config.node["worker"].rendered) <= 21844
      error_message = "The workers' user data exceeds EC2's 16 KB limit."
    }
  }

  depends_on = [
    aws_route_table_association.private,
    aws_nat_gateway.this,
    aws_iam_role_policy.node_secrets,
    aws_iam_role_policy_attachment.node_ssm,
  ]
}
