data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# ---------------------------------------------------------------------------
# KMS key: the SSM parameters holding the cluster secrets and the flow logs
# ---------------------------------------------------------------------------

resource "aws_kms_key" "cluster" {
  description             = "Storekeeper cluster ${var.name}: bootstrap secrets in SSM and VPC flow logs"
  enable_key_rotation     = true
  deletion_window_in_days = 7

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Lets IAM policies in this account grant use of the key (the node
        # roles get kms:Decrypt through their own policies).
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsFlowLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.amazonaws.com" }
        Action = [
          "kms:Encrypt*",
          "kms:Decrypt*",
          "kms:ReEncrypt*",
          "kms:GenerateDataKey*",
          "kms:Describe*",
        ]
        Resource = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:/storekeeper/${var.name}/*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "cluster" {
  name          = "alias/storekeeper-${var.name}"
  target_key_id = aws_kms_key.cluster.key_id
}

# ---------------------------------------------------------------------------
# Security groups
#
#   nodes          every node: kubelet, Calico and Typha between nodes only
#   control_plane  the API server (VPC + admin_cidrs) and etcd (control plane only)
#   workers        Envoy's NodePorts 30080/30443 (VPC + the load balancer)
#   ingress_lb     the public NLB: 80/443 from ingress_cidrs, to the workers only
# ---------------------------------------------------------------------------

resource "aws_security_group" "nodes" {
  name_prefix = "${var.name}-nodes-"
  description = "Every Storekeeper node: traffic between cluster nodes and egress"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${var.name}-nodes" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "control_plane" {
  name_prefix = "${var.name}-control-plane-"
  description = "Storekeeper control plane: Kubernetes API and etcd"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${var.name}-control-plane" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "workers" {
  name_prefix = "${var.name}-workers-"
  description = "Storekeeper workers: the shop edge (Envoy Gateway NodePorts)"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${var.name}-workers" }

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  # Ports open between nodes (source: the nodes group itself).
  node_to_node_rules = merge(
    {
      kubelet = { protocol = "tcp", from = 10250, to = 10250, description = "kubelet API (API server, metrics)" }
      typha   = { protocol = "tcp", from = 5473, to = 5473, description = "Calico Typha (calico-node to typha)" }
    },
    var.calico_encapsulation == "VXLAN" ? {
      vxlan = { protocol = "udp", from = 4789, to = 4789, description = "Calico VXLAN pod traffic" }
    } : {},
    var.calico_encapsulation == "IPIP" ? {
      bgp  = { protocol = "tcp", from = 179, to = 179, description = "Calico BGP route exchange" }
      ipip = { protocol = "4", from = null, to = null, description = "Calico IP-in-IP pod traffic" }
    } : {},
  )
}

resource "aws_vpc_security_group_ingress_rule" "node_to_node" {
  for_each = local.node_to_node_rules

  security_group_id            = aws_security_group.nodes.id
  referenced_security_group_id = aws_security_group.nodes.id
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.from
  to_port                      = each.value.to
  description                  = each.value.description
}

resource "aws_vpc_security_group_egress_rule" "nodes_https" {
  security_group_id = aws_security_group.nodes.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "HTTPS out: packages, container registries, charts, SSM"
}

resource "aws_vpc_security_group_egress_rule" "nodes_http" {
  security_group_id = aws_security_group.nodes.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  description       = "HTTP out: Ubuntu package mirrors (apt verifies signatures)"
}

resource "aws_vpc_security_group_egress_rule" "nodes_vpc" {
  security_group_id = aws_security_group.nodes.id
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "-1"
  description       = "Anything inside the VPC: other nodes, external databases of a Store"
}

resource "aws_vpc_security_group_ingress_rule" "api_from_vpc" {
  security_group_id = aws_security_group.control_plane.id
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "tcp"
  from_port         = 6443
  to_port           = 6443
  description       = "Kubernetes API from the VPC (nodes, pods, SSM port forwarding)"
}

resource "aws_vpc_security_group_ingress_rule" "api_from_admins" {
  for_each = toset(var.admin_cidrs)

  security_group_id = aws_security_group.control_plane.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 6443
  to_port           = 6443
  description       = "Kubernetes API from admin network ${each.value}"
}

resource "aws_vpc_security_group_ingress_rule" "etcd" {
  security_group_id            = aws_security_group.control_plane.id
  referenced_security_group_id = aws_security_group.control_plane.id
  ip_protocol                  = "tcp"
  from_port                    = 2379
  to_port                      = 2380
  description                  = "etcd client and peer traffic, control plane nodes only"
}

resource "aws_vpc_security_group_ingress_rule" "ingress_from_vpc" {
  for_each = local.edge_node_ports

  security_group_id = aws_security_group.workers.id
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
  description       = "Envoy NodePort ${each.value} (shop port ${each.key}) from inside the VPC"
}

resource "aws_vpc_security_group_ingress_rule" "ingress_from_lb" {
  for_each = var.enable_ingress_nlb ? local.edge_node_ports : {}

  security_group_id            = aws_security_group.workers.id
  referenced_security_group_id = aws_security_group.ingress_lb[0].id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  description                  = "Envoy NodePort ${each.value} (shop port ${each.key}) from the load balancer (traffic and health checks)"
}

resource "aws_security_group" "ingress_lb" {
  count = var.enable_ingress_nlb ? 1 : 0

  name_prefix = "${var.name}-ingress-lb-"
  description = "Storekeeper public load balancer: shoppers in on 80/443, out to the workers only"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${var.name}-ingress-lb" }

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  lb_ingress_rules = var.enable_ingress_nlb ? {
    for pair in setproduct(["80", "443"], var.ingress_cidrs) : "${pair[0]}-${pair[1]}" => { port = tonumber(pair[0]), cidr = pair[1] }
  } : {}
}

resource "aws_vpc_security_group_ingress_rule" "lb_public" {
  #checkov:skip=CKV_AWS_260:The shop is a public website: its load balancer must accept port 80 from anyone (ingress_cidrs can narrow it); port 80 only redirects to HTTPS and answers ACME challenges.
  for_each = local.lb_ingress_rules

  security_group_id = aws_security_group.ingress_lb[0].id
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  description       = "Shoppers to the shop on ${each.value.port}"
}

resource "aws_vpc_security_group_egress_rule" "lb_to_workers" {
  for_each = var.enable_ingress_nlb ? local.edge_node_ports : {}

  security_group_id            = aws_security_group.ingress_lb[0].id
  referenced_security_group_id = aws_security_group.workers.id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  description                  = "To Envoy on the workers, NodePort ${each.value} (shop port ${each.key})"
}
