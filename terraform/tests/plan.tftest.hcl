# Offline tests of the configuration's logic (counts, rules, rendering,
# variable validation) with every provider mocked: no AWS account, no cloud
# resources. Run: terraform init && terraform test
# (init downloads the four providers; nothing else needs the network).

mock_provider "random" {}

mock_provider "tls" {}

mock_provider "cloudinit" {
  mock_data "cloudinit_config" {
    defaults = {
      rendered = "I2Nsb3VkLWNvbmZpZwo="
    }
  }
}

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b"]
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_ec2_instance_type" {
    defaults = {
      supported_architectures = ["x86_64"]
      default_vcpus           = 2
      memory_size             = 8192
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    }
  }
  mock_resource "aws_ssm_parameter" {
    defaults = {
      arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/storekeeper/x"
    }
  }
  mock_resource "aws_lb" {
    defaults = {
      arn      = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/skin-x/0123456789abcdef"
      dns_name = "skin-x-0123456789abcdef.elb.eu-west-1.amazonaws.com"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/sk80-x/0123456789abcdef"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/storekeeper/storekeeper/vpc-flow-logs"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/storekeeper-flow-logs-x"
    }
  }
}

run "defaults" {
  command = apply

  assert {
    condition     = aws_instance.control_plane.private_ip == "10.0.128.10"
    error_message = "the control plane must get the fixed address in the first private subnet"
  }
  assert {
    condition     = length(aws_instance.worker) == 2
    error_message = "two workers by default"
  }
  assert {
    condition     = length(aws_lb_target_group_attachment.ingress) == 4
    error_message = "each worker must be a target on 80 and 443"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.node_to_node) == 3
    error_message = "VXLAN needs kubelet, typha and vxlan rules only"
  }
  assert {
    condition     = strcontains(local.env_file["control-plane"], "EXPECTED_WORKERS='2'")
    error_message = "the control plane must wait for both workers"
  }
  assert {
    condition     = aws_lb_target_group.ingress["443"].port == 30443 && aws_lb_target_group.ingress["80"].port == 30080
    error_message = "the load balancer must target Envoy's NodePorts"
  }
  assert {
    condition     = !strcontains(local.env_file["worker"], "CA_KEY_PARAMETER")
    error_message = "workers must not be told where the CA key is"
  }
  assert {
    condition     = length([for f in local.write_files["control-plane"] : f if f.path == "/etc/storekeeper/example-store.yaml"]) == 0
    error_message = "without shop_host and acme_email no Store may be exposed"
  }
  assert {
    condition     = strcontains(local.env_file["control-plane"], "SHOP_HOST=''")
    error_message = "no TLS settings by default"
  }
  assert {
    condition     = length([for f in local.write_files["control-plane"] : f if f.path == "/opt/storekeeper/bootstrap/edge.sh"]) == 1
    error_message = "the control plane needs edge.sh"
  }
  assert {
    condition     = length([for f in local.write_files["control-plane"] : f if f.path == "/opt/storekeeper/bootstrap/manifest.sh"]) == 1
    error_message = "the control plane needs manifest.sh"
  }
  assert {
    condition     = strcontains(local.env_file["control-plane"], "CALICO_CRDS_SHA256='${var.calico_manifest_sha256.operator_crds}'") && strcontains(local.env_file["control-plane"], "LOCAL_PATH_PROVISIONER_SHA256='${var.local_path_provisioner_sha256}'")
    error_message = "every manifest the control plane downloads must come with its pin"
  }
  assert {
    condition     = strcontains(local.env_file["control-plane"], "ADMIN_KUBECONFIG_TTL_HOURS='24'")
    error_message = "the published kubeconfig is short-lived by default"
  }
}

run "tls" {
  command = apply
  variables {
    shop_host  = "shop.example.org"
    acme_email = "ops@example.org"
  }
  assert {
    condition     = strcontains(local.env_file["control-plane"], "SHOP_HOST='shop.example.org'") && strcontains(local.env_file["control-plane"], "ACME_EMAIL='ops@example.org'")
    error_message = "the bootstrap must get the host and the ACME account"
  }
  assert {
    condition     = strcontains(local.env_file["control-plane"], "SHOP_TLS_SECRET='shop-tls'")
    error_message = "the certificate's Secret is <store>-tls"
  }
  assert {
    condition     = yamldecode(local.example_store).spec.ingress.tls.secretName == "shop-tls" && yamldecode(local.example_store).spec.ingress.host == "shop.example.org"
    error_message = "the example Store must be served over TLS on shop_host"
  }
  assert {
    condition     = yamldecode(local.example_store).spec.ingress.controllerNamespace == "envoy-gateway-system"
    error_message = "the example Store's NetworkPolicies must admit Envoy"
  }
  assert {
    condition     = yamldecode(local.example_store).spec.ingress.gateway == { name = "shop", namespace = "storekeeper-edge", sectionName = "https" }
    error_message = "the example Store must attach to the bootstrap's Gateway (its HTTPS listener)"
  }
  assert {
    condition     = strcontains(local.env_file["control-plane"], "EDGE_GATEWAY_NAME='shop'") && strcontains(local.env_file["control-plane"], "EDGE_NAMESPACE='storekeeper-edge'")
    error_message = "the bootstrap must create the Gateway the Store names"
  }
}

run "example_store_without_tls" {
  command = plan
  variables {
    example_store_path = "../examples/store.yaml"
  }
  expect_failures = [aws_instance.control_plane]
}

run "bad_shop_host" {
  command = plan
  variables {
    shop_host = "https://shop.example.org"
  }
  expect_failures = [var.shop_host]
}

run "ipip_no_lb" {
  command = apply
  variables {
    calico_encapsulation = "IPIP"
    enable_ingress_nlb   = false
    admin_cidrs          = ["192.168.10.0/24"]
    worker_count         = 3
    example_store_path   = ""
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.node_to_node) == 4
    error_message = "IPIP needs kubelet, typha, BGP and protocol 4"
  }
  assert {
    condition     = length(aws_lb.ingress) == 0
    error_message = "no load balancer when disabled"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.api_from_admins) == 1
    error_message = "one API rule per admin CIDR"
  }
  assert {
    condition     = aws_instance.worker[2].subnet_id == aws_subnet.private[0].id
    error_message = "workers alternate between the two zones"
  }
}

run "instance_type_of_another_architecture" {
  command = plan
  variables {
    architecture = "arm64"
  }
  expect_failures = [aws_instance.control_plane, aws_instance.worker]
}

run "overlapping_pod_cidr" {
  command = plan
  variables {
    pod_cidr = "10.0.0.0/8"
  }
  expect_failures = [aws_vpc.this]
}

run "bad_token_ttl" {
  command = plan
  variables {
    join_token_ttl = "0h"
  }
  expect_failures = [var.join_token_ttl]
}

run "bad_admin_cidr" {
  command = plan
  variables {
    admin_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.admin_cidrs]
}
