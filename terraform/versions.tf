terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.30+ for security groups on network load balancers.
      version = "~> 5.30"
    }
    cloudinit = {
      source  = "hashicorp/cloudinit"
      version = "~> 2.3"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # The state holds the cluster CA private key and the join token (as it holds
  # every secret Terraform generates). Keep it in an encrypted remote backend
  # with restricted access, never in Git, for example:
  #
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "storekeeper/terraform.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      "app.kubernetes.io/part-of" = "storekeeper"
      "storekeeper.dev/cluster"   = var.name
    })
  }
}
