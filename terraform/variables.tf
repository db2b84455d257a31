# ---------------------------------------------------------------------------
# Where and what
# ---------------------------------------------------------------------------

variable "name" {
  description = "Name of the cluster; prefixes every AWS resource name and is the Kubernetes clusterName."
  type        = string
  default     = "storekeeper"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.name))
    error_message = "name must be 3-22 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  description = "AWS region to build the cluster in."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "tags" {
  description = "Extra tags put on every AWS resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.tags : length(k) > 0 && length(k) <= 128 && length(v) <= 256 && !startswith(lower(k), "aws:")])
    error_message = "tags keys must be 1-128 characters and not start with 'aws:'; values at most 256 characters."
  }
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC. Split into two public and two private subnets (/20s for a /16). Must not overlap pod_cidr or service_cidr."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 22, false)
    error_message = "vpc_cidr must be a valid IPv4 CIDR with a prefix between /16 and /22."
  }
}

variable "availability_zones" {
  description = "The two availability zones to use, e.g. [\"eu-west-1a\", \"eu-west-1b\"]. Empty means <region>a and <region>b."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || (length(var.availability_zones) == 2 && length(distinct(var.availability_zones)) == 2)
    error_message = "availability_zones must be empty or name exactly two different zones."
  }
}

variable "admin_cidrs" {
  description = "CIDRs that may reach the Kubernetes API (6443) besides the VPC itself: networks routed into the VPC (VPN, peering, Transit Gateway). The control plane has no public address; from a laptop, use the SSM port forward in the outputs."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "admin_cidrs must be valid IPv4 CIDRs, and 0.0.0.0/0 is not allowed."
  }
}

variable "enable_ingress_nlb" {
  description = "Create a public Network Load Balancer that forwards TCP 80/443 to the shop's edge (Envoy Gateway) on the workers. Without it the shop is reachable only from inside the VPC."
  type        = bool
  default     = true
}

variable "ingress_cidrs" {
  description = "CIDRs allowed to reach the shop through the load balancer on 80/443."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.ingress_cidrs) > 0 && alltrue([for c in var.ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "ingress_cidrs must be a non-empty list of valid IPv4 CIDRs."
  }
}

variable "enable_flow_logs" {
  description = "Send VPC flow logs (rejected and accepted traffic) to an encrypted CloudWatch Logs group."
  type        = bool
  default     = true
}

variable "flow_logs_retention_days" {
  description = "Retention of the VPC flow log group, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_logs_retention_days)
    error_message = "flow_logs_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, ...)."
  }
}

# ---------------------------------------------------------------------------
# Machines
# ---------------------------------------------------------------------------

variable "architecture" {
  description = "CPU architecture of the nodes; picks the Ubuntu 24.04 AMI and must match the instance types (arm64 needs Graviton types such as t4g/m7g)."
  type        = string
  default     = "amd64"

  validation {
    condition     = contains(["amd64", "arm64"], var.architecture)
    error_message = "architecture must be amd64 or arm64."
  }
}

variable "control_plane_instance_type" {
  description = "EC2 instance type of the control plane node (kubeadm needs at least 2 vCPUs and 2 GiB)."
  type        = string
  default     = "t3.medium"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.control_plane_instance_type))
    error_message = "control_plane_instance_type must look like an EC2 instance type, e.g. t3.medium."
  }
}

variable "worker_instance_type" {
  description = "EC2 instance type of the worker nodes. A Store with its data layer and observability needs roughly 6 GiB; t3.large (8 GiB) per worker leaves headroom."
  type        = string
  default     = "t3.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.worker_instance_type))
    error_message = "worker_instance_type must look like an EC2 instance type, e.g. t3.large."
  }
}

variable "worker_count" {
  description = "Number of worker nodes, spread over the two availability zones."
  type        = number
  default     = 2

  validation {
    condition     = var.worker_count >= 1 && var.worker_count <= 10 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a whole number from 1 to 10."
  }
}

variable "control_plane_volume_size" {
  description = "Size of the control plane's encrypted gp3 root volume, in GiB."
  type        = number
  default     = 30

  validation {
    condition     = var.control_plane_volume_size >= 20 && var.control_plane_volume_size <= 1000
    error_message = "control_plane_volume_size must be between 20 and 1000 GiB."
  }
}

variable "worker_volume_size" {
  description = "Size of each worker's encrypted gp3 root volume, in GiB. It also holds the PersistentVolumes of managed databases (local-path storage)."
  type        = number
  default     = 50

  validation {
    condition     = var.worker_volume_size >= 20 && var.worker_volume_size <= 2000
    error_message = "worker_volume_size must be between 20 and 2000 GiB."
  }
}

variable "detailed_monitoring" {
  description = "Enable one-minute EC2 detailed monitoring on every node (small extra cost per instance)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Kubernetes and what the bootstrap installs
# ---------------------------------------------------------------------------

variable "kubernetes_minor_version" {
  description = "Kubernetes minor version; the nodes install kubeadm, kubelet and kubectl from the pkgs.k8s.io repository of this minor (latest patch) and hold them."
  type        = string
  default     = "1.35"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_minor_version))
    error_message = "kubernetes_minor_version must look like 1.35."
  }
}

variable "pod_cidr" {
  description = "Pod network CIDR (kubeadm podSubnet and the Calico IP pool). Must not overlap vpc_cidr or service_cidr."
  type        = string
  default     = "192.168.0.0/16"

  validation {
    condition     = can(cidrhost(var.pod_cidr, 0))
    error_message = "pod_cidr must be a valid IPv4 CIDR."
  }
}

variable "service_cidr" {
  description = "Kubernetes Service CIDR (kubeadm serviceSubnet). Must not overlap vpc_cidr or pod_cidr."
  type        = string
  default     = "10.96.0.0/12"

  validation {
    condition     = can(cidrhost(var.service_cidr, 0))
    error_message = "service_cidr must be a valid IPv4 CIDR."
  }
}

variable "calico_version" {
  description = "Calico release whose tigera-operator manifest is applied (a Git tag of projectcalico/calico)."
  type        = string
  default     = "v3.31.3"

  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+$", var.calico_version))
    error_message = "calico_version must look like v3.31.3."
  }
}

variable "calico_manifest_sha256" {
  description = "SHA-256 of calico_version's manifests/operator-crds.yaml and manifests/tigera-operator.yaml; the control plane refuses a download that differs. Change them together with calico_version (sha256sum of the files at that Git tag)."
  type = object({
    operator_crds   = string
    tigera_operator = string
  })
  default = {
    operator_crds   = "d6193da8ce442328c1a14d3a3bb7ad89fcaceceac5fb293254095fbf736c2499"
    tigera_operator = "23d4b023fd862741b8c0fe068d27cecd18f27edda93ecc6b4433c7faeb2b940e"
  }

  validation {
    condition     = alltrue([for h in values(var.calico_manifest_sha256) : can(regex("^[0-9a-f]{64}$", h))])
    error_message = "calico_manifest_sha256 values must be 64 lowercase hex digits."
  }
}

variable "calico_encapsulation" {
  description = "Pod-to-pod encapsulation between nodes: VXLAN (UDP 4789, no BGP) or IPIP (IP protocol 4, with BGP on TCP 179). The security groups open only what the choice needs."
  type        = string
  default     = "VXLAN"

  validation {
    condition     = contains(["VXLAN", "IPIP"], var.calico_encapsulation)
    error_message = "calico_encapsulation must be VXLAN or IPIP."
  }
}

variable "helm_version" {
  description = "Helm release installed on the control plane (checksum-verified download)."
  type        = string
  default     = "v3.19.5"

  validation {
    condition     = can(regex("^v3\\.[0-9]+\\.[0-9]+$", var.helm_version))
    error_message = "helm_version must look like v3.19.5."
  }
}

variable "local_path_provisioner_version" {
  description = "Release of rancher/local-path-provisioner installed as the default StorageClass (for the managed data layer's PersistentVolumeClaims)."
  type        = string
  default     = "v0.0.34"

  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+$", var.local_path_provisioner_version))
    error_message = "local_path_provisioner_version must look like v0.0.34."
  }
}

variable "local_path_provisioner_sha256" {
  description = "SHA-256 of local_path_provisioner_version's deploy/local-path-storage.yaml; the control plane refuses a download that differs. Change it together with the version."
  type        = string
  default     = "fab8d6e8933e44f8af7398603fb63122e4ea6490f0af83549108d68647edd9e9"

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.local_path_provisioner_sha256))
    error_message = "local_path_provisioner_sha256 must be 64 lowercase hex digits."
  }
}

variable "admin_kubeconfig_ttl_hours" {
  description = "Lifetime of the cluster-admin kubeconfig the control plane publishes to SSM: its client certificate expires and SSM deletes the parameter after this many hours. Publish a fresh one with `sudo /opt/storekeeper/bootstrap/control-plane.sh publish-kubeconfig` on the control plane."
  type        = number
  default     = 24

  validation {
    condition     = var.admin_kubeconfig_ttl_hours >= 1 && var.admin_kubeconfig_ttl_hours <= 168 && floor(var.admin_kubeconfig_ttl_hours) == var.admin_kubeconfig_ttl_hours
    error_message = "admin_kubeconfig_ttl_hours must be a whole number of hours from 1 to 168."
  }
}

variable "join_token_ttl" {
  description = "Lifetime of the generated kubeadm bootstrap token (Go duration). Workers join within minutes of the apply; a worker added later needs a new token (see docs/cluster.md)."
  type        = string
  default     = "24h"

  validation {
    condition     = can(regex("^[0-9]+(h|m)$", var.join_token_ttl)) && !can(regex("^0+(h|m)$", var.join_token_ttl))
    error_message = "join_token_ttl must be a non-zero duration in hours or minutes, such as 24h or 90m (a token that never expires is not allowed)."
  }
}

# ---------------------------------------------------------------------------
# Storekeeper
# ---------------------------------------------------------------------------

variable "operator_chart" {
  description = "OCI reference of the Storekeeper Helm chart, installed as release 'storekeeper' in namespace storekeeper-system. Empty skips the operator."
  type        = string
  default     = "oci://ghcr.io/storekeeper-dev/charts/storekeeper"

  validation {
    condition     = var.operator_chart == "" || can(regex("^oci://[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$", var.operator_chart))
    error_message = "operator_chart must be an OCI chart reference such as oci://ghcr.io/storekeeper-dev/charts/storekeeper, or empty."
  }
}

variable "operator_chart_version" {
  description = "Version of the Storekeeper chart (the release tag without 'v', e.g. 0.1.0)."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$", var.operator_chart_version))
    error_message = "operator_chart_version must be a semantic version such as 0.1.0."
  }
}

variable "operator_image_repository" {
  description = "Overrides the chart's image.repository for the operator. Empty keeps the chart's default."
  type        = string
  default     = ""

  validation {
    condition     = var.operator_image_repository == "" || can(regex("^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$", var.operator_image_repository))
    error_message = "operator_image_repository must be an image repository such as ghcr.io/storekeeper-dev/storekeeper, or empty."
  }
}

variable "operator_image_tag" {
  description = "Overrides the chart's image.tag for the operator. Empty keeps the chart's default (its appVersion)."
  type        = string
  default     = ""

  validation {
    condition     = var.operator_image_tag == "" || can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.operator_image_tag))
    error_message = "operator_image_tag must be a valid image tag, or empty."
  }
}

variable "shop_host" {
  description = "Public host name of the example shop (a DNS name you control, CNAME to the load balancer: output ingress_dns_name). With acme_email it turns on HTTPS: cert-manager obtains a certificate from acme_server through the shop's Gateway, and plain HTTP only redirects. Empty: no shop is exposed."
  type        = string
  default     = ""

  validation {
    condition     = var.shop_host == "" || (length(var.shop_host) <= 253 && can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$", var.shop_host)))
    error_message = "shop_host must be a fully qualified DNS name such as shop.example.com (lower case, no scheme, no port), or empty."
  }
}

variable "acme_email" {
  description = "E-mail of the ACME account that requests the shop's certificate (expiry notices go there). Empty: no certificate, no shop exposed."
  type        = string
  default     = ""

  validation {
    condition     = var.acme_email == "" || can(regex("^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$", var.acme_email))
    error_message = "acme_email must be an e-mail address, or empty."
  }
}

variable "acme_server" {
  description = "ACME directory the certificate comes from. Let's Encrypt's production directory by default; its staging directory (https://acme-staging-v02.api.letsencrypt.org/directory) for rehearsals, which browsers do not trust."
  type        = string
  default     = "https://acme-v02.api.letsencrypt.org/directory"

  validation {
    condition     = can(regex("^https://[^[:space:]]+$", var.acme_server))
    error_message = "acme_server must be an https:// URL."
  }
}

variable "example_store_path" {
  description = "Store manifest (path relative to this directory) the control plane applies once the operator is up, exposed at https://<shop_host> (its spec.ingress host, TLS and controller namespace are set from shop_host). null picks ../examples/store.yaml, else ../examples/minimal.yaml, when shop_host and acme_email are set, and none otherwise; \"\" applies none. A Store is never exposed without TLS: a path without shop_host and acme_email fails the plan."
  type        = string
  default     = null

  validation {
    condition     = var.example_store_path == null || var.example_store_path == "" || try(fileexists(var.example_store_path), false)
    error_message = "example_store_path must name an existing file, or be \"\" (none) or null (the repository's example)."
  }
}

variable "example_store_namespace" {
  description = "Namespace the example Store is applied in when its manifest names none (created when missing)."
  type        = string
  default     = "shop"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.example_store_namespace))
    error_message = "example_store_namespace must be a valid Kubernetes namespace name."
  }
}
