output "vpc_id" {
  description = "ID of the cluster's VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets (one per availability zone) holding the nodes."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Public subnets (one per availability zone) holding the NAT gateway and the load balancer."
  value       = aws_subnet.public[*].id
}

output "control_plane_instance_id" {
  description = "EC2 instance ID of the control plane (the SSM target)."
  value       = aws_instance.control_plane.id
}

output "control_plane_private_ip" {
  description = "Private IP of the control plane; the Kubernetes API is https://<this>:6443 inside the VPC."
  value       = aws_instance.control_plane.private_ip
}

output "worker_instance_ids" {
  description = "EC2 instance IDs of the workers."
  value       = aws_instance.worker[*].id
}

output "worker_private_ips" {
  description = "Private IPs of the workers."
  value       = aws_instance.worker[*].private_ip
}

output "ingress_dns_name" {
  description = "DNS name of the public load balancer in front of the shop's edge (Envoy Gateway; null without enable_ingress_nlb). Point shop_host at it (CNAME) before the certificate can be issued."
  value       = var.enable_ingress_nlb ? aws_lb.ingress[0].dns_name : null
}

output "ssm_session_command" {
  description = "Opens a shell on the control plane through SSM Session Manager (no SSH). There, `sudo kubectl get nodes` works."
  value       = "aws ssm start-session --region ${var.region} --target ${aws_instance.control_plane.id}"
}

output "bootstrap_log_command" {
  description = "Follows the control plane's bootstrap log through SSM."
  value       = "aws ssm start-session --region ${var.region} --target ${aws_instance.control_plane.id} --document-name AWS-StartInteractiveCommand --parameters command='sudo tail -n 200 -F /var/log/storekeeper-bootstrap.log'"
}

output "kubeconfig_parameter" {
  description = "SSM parameter (SecureString) where the control plane publishes the cluster-admin kubeconfig."
  value       = aws_ssm_parameter.admin_kubeconfig.name
}

output "kubeconfig_command" {
  description = "Writes ./storekeeper.kubeconfig from SSM Parameter Store, pointed at the local end of api_tunnel_command."
  value       = "aws ssm get-parameter --region ${var.region} --name ${aws_ssm_parameter.admin_kubeconfig.name} --with-decryption --query Parameter.Value --output text > storekeeper.kubeconfig && chmod 600 storekeeper.kubeconfig && kubectl --kubeconfig storekeeper.kubeconfig config set-cluster ${var.name} --server=https://127.0.0.1:6443"
}

output "api_tunnel_command" {
  description = "Forwards localhost:6443 to the Kubernetes API through SSM (keep it running while using kubectl). Needs the Session Manager plugin."
  value       = "aws ssm start-session --region ${var.region} --target ${aws_instance.control_plane.id} --document-name AWS-StartPortForwardingSession --parameters portNumber=6443,localPortNumber=6443"
}

output "cluster_ca_certificate" {
  description = "PEM certificate of the cluster CA (public). `kubeadm join` on the workers pins its public key hash."
  value       = tls_self_signed_cert.cluster_ca.cert_pem
}

output "join_token" {
  description = "kubeadm bootstrap token generated for this cluster (expires after join_token_ttl)."
  value       = local.join_token
  sensitive   = true
}

output "shop_url" {
  description = "The example shop, served over HTTPS only (null without shop_host and acme_email)."
  value       = local.tls_enabled ? "https://${var.shop_host}" : null
}
