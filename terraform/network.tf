# VPC over two availability zones: a small public subnet per zone (NAT
# gateway, load balancer) and a large private subnet per zone (every node).
# One NAT gateway serves both zones: cheaper, at the price of losing node
# egress (not the shop's ingress) if its zone fails.

# The two zones are named, not "the first two AWS lists", so the set never
# changes under a running cluster; the lookup fails early if one of them is
# not available to the account.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = length(var.availability_zones) == 2 ? var.availability_zones : ["${var.region}a", "${var.region}b"]
  }
}

locals {
  azs = data.aws_availability_zones.selected.names

  # For a /16: public 10.0.0.0/20 and 10.0.16.0/20, private 10.0.128.0/18 and 10.0.192.0/18.
  public_subnet_cidrs  = [for i in range(2) : cidrsubnet(var.vpc_cidr, 4, i)]
  private_subnet_cidrs = [for i in range(2) : cidrsubnet(var.vpc_cidr, 2, 2 + i)]

  # Address ranges that must not overlap. Two CIDRs overlap when their
  # network addresses agree on the shorter of the two prefixes.
  cidr_vars = { vpc_cidr = var.vpc_cidr, pod_cidr = var.pod_cidr, service_cidr = var.service_cidr }
  cidr_pairs = [
    for pair in [["vpc_cidr", "pod_cidr"], ["vpc_cidr", "service_cidr"], ["pod_cidr", "service_cidr"]] : {
      name   = "${pair[0]} and ${pair[1]}"
      a      = split("/", local.cidr_vars[pair[0]])[0]
      b      = split("/", local.cidr_vars[pair[1]])[0]
      prefix = min(tonumber(split("/", local.cidr_vars[pair[0]])[1]), tonumber(split("/", local.cidr_vars[pair[1]])[1]))
    }
  ]
  cidr_overlaps = [
    for p in local.cidr_pairs : p.name
    if cidrhost("${p.a}/${p.prefix}", 0) == cidrhost("${p.b}/${p.prefix}", 0)
  ]

  # The control plane gets a fixed address so that every node's user data
  # (and the API server certificate) can name it before it exists.
  control_plane_ip = cidrhost(local.private_subnet_cidrs[0], 10)
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = var.name }

  lifecycle {
    precondition {
      condition     = length(local.cidr_overlaps) == 0
      error_message = "Address ranges overlap: ${join(", ", local.cidr_overlaps)}. Pick separate ranges for the VPC, the pods and the Services."
    }

    precondition {
      condition     = length(local.azs) == 2
      error_message = "Both availability zones must exist and be available in the region; set availability_zones to two that are."
    }
  }
}

# Nothing may use the default security group: strip all its rules.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = { Name = "${var.name}-default-unused" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = { Name = var.name }
}

resource "aws_subnet" "public" {
  count = 2

  vpc_id                  = aws_vpc.this.id
  availability_zone       = element(local.azs, count.index)
  cidr_block              = local.public_subnet_cidrs[count.index]
  map_public_ip_on_launch = false

  tags = { Name = "${var.name}-public-${element(local.azs, count.index)}" }
}

resource "aws_subnet" "private" {
  count = 2

  vpc_id                  = aws_vpc.this.id
  availability_zone       = element(local.azs, count.index)
  cidr_block              = local.private_subnet_cidrs[count.index]
  map_public_ip_on_launch = false

  tags = { Name = "${var.name}-private-${element(local.azs, count.index)}" }
}

resource "aws_eip" "nat" {
  domain = "vpc"

  tags = { Name = "${var.name}-nat" }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id

  tags = { Name = var.name }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }

  tags = { Name = "${var.name}-public" }
}

resource "aws_route_table_association" "public" {
  count = 2

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id

  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.this.id
  }

  tags = { Name = "${var.name}-private" }
}

resource "aws_route_table_association" "private" {
  count = 2

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# ---------------------------------------------------------------------------
# VPC flow logs -> CloudWatch Logs, encrypted with the cluster's KMS key
# ---------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  name              = "/storekeeper/${var.name}/vpc-flow-logs"
  retention_in_days = var.flow_logs_retention_days
  kms_key_id        = aws_kms_key.cluster.arn
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  name_prefix        = "${var.name}-flow-logs-"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
}

data "aws_iam_policy_document" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  statement {
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogGroups",
      "logs:DescribeLogStreams",
    ]
    resources = [
      aws_cloudwatch_log_group.flow_logs[0].arn,
      "${aws_cloudwatch_log_group.flow_logs[0].arn}:*",
    ]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs[0].id
  policy = data.aws_iam_policy_document.flow_logs[0].json
}

resource "aws_flow_log" "this" {
  count = var.enable_flow_logs ? 1 : 0

  vpc_id               = aws_vpc.this.id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn         = aws_iam_role.flow_logs[0].arn

  tags = { Name = var.name }
}
