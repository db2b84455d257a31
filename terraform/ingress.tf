# Public entry for shoppers: a Network Load Balancer in the public subnets
# forwards TCP 80 and 443 to the shop's edge on the workers: Envoy (managed
# by Envoy Gateway, see bootstrap/node/edge.sh) runs on every worker behind a
# NodePort Service on fixed ports, 30080 for HTTP and 30443 for HTTPS. TLS
# terminates at Envoy (certificates from cert-manager's ACME issuer), so the
# load balancer stays a plain TCP pass-through and, with the Service's
# externalTrafficPolicy Local, keeps the client's address. Port 80 only
# redirects to HTTPS and answers ACME challenges. Without enable_ingress_nlb,
# the same NodePorts answer inside the VPC only.

locals {
  # Shop port on the load balancer => Envoy's NodePort on the workers.
  edge_node_ports = { "80" = 30080, "443" = 30443 }
}

resource "aws_lb" "ingress" {
  #checkov:skip=CKV_AWS_91:Access logs need an S3 bucket of their own; the shop's requests are logged by Envoy and the services (Loki).
  #checkov:skip=CKV_AWS_150:Deletion protection would stop the documented one-command teardown of this disposable cluster.
  count = var.enable_ingress_nlb ? 1 : 0

  name                             = "${var.name}-ingress"
  internal                         = false
  load_balancer_type               = "network"
  subnets                          = aws_subnet.public[*].id
  security_groups                  = [aws_security_group.ingress_lb[0].id]
  enable_cross_zone_load_balancing = true

  tags = { Name = "${var.name}-ingress" }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_lb_target_group" "ingress" {
  for_each = var.enable_ingress_nlb ? toset(["80", "443"]) : toset([])

  name_prefix          = "sk${each.value}-"
  port                 = local.edge_node_ports[each.value]
  protocol             = "TCP"
  target_type          = "instance"
  vpc_id               = aws_vpc.this.id
  deregistration_delay = 30

  health_check {
    protocol            = "TCP"
    port                = "traffic-port"
    interval            = 10
    healthy_threshold   = 3
    unhealthy_threshold = 3
  }

  tags = { Name = "${var.name}-ingress-${each.value}" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_target_group_attachment" "ingress" {
  for_each = var.enable_ingress_nlb ? {
    for pair in setproduct(["80", "443"], [for i in range(var.worker_count) : tostring(i)]) : "${pair[0]}-${pair[1]}" => { port = pair[0], worker = pair[1] }
  } : {}

  target_group_arn = aws_lb_target_group.ingress[each.value.port].arn
  target_id        = aws_instance.worker[tonumber(each.value.worker)].id
  port             = local.edge_node_ports[each.value.port]
}

resource "aws_lb_listener" "ingress" {
  for_each = var.enable_ingress_nlb ? toset(["80", "443"]) : toset([])

  load_balancer_arn = aws_lb.ingress[0].arn
  port              = tonumber(each.value)
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.ingress[each.value].arn
  }
}
