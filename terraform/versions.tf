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
  # every secret Terraform generates): keep it in an encrypted remote
  # backend with restricted access, never in Git. backend.tf.example and
  # state.s3.tfbackend.example switch on S3 (docs/cluster.md, step 1).
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
