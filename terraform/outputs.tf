output "grpc_endpoint" {
  description = "host:port the client connects to (TLS), e.g. hws-client --addr <this> --tls."
  value       = module.alb.grpc_endpoint
}

output "ecr_repository_url" {
  description = "Push the image here (docker push <url>:<tag>)."
  value       = module.ecr.repository_url
}

output "image" {
  description = "Image reference the task definition runs."
  value       = local.image
}

output "alb_dns_name" {
  description = "DNS name of the ALB (the alias record points at it)."
  value       = module.alb.alb_dns_name
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = module.gpu_cluster.cluster_name
}

output "service_name" {
  description = "ECS service name."
  value       = module.service.service_name
}

output "log_group_name" {
  description = "CloudWatch log group of the server."
  value       = module.service.log_group_name
}

output "autoscaling_group_name" {
  description = "GPU Auto Scaling group."
  value       = module.gpu_cluster.autoscaling_group_name
}

output "stop_timeout_s" {
  description = "Container stopTimeout derived from the grace period."
  value       = module.render.stop_timeout_s
}

output "nat_public_ips" {
  description = "Egress IPs (for allow-lists upstream), empty without NAT."
  value       = module.network.nat_public_ips
}

output "kms_key_arn" {
  description = "KMS key used for logs, ECR and EBS (created, given, or null)."
  value       = local.kms_key_arn
}

output "kms_key_policy_statements_json" {
  description = "Key policy statements a key of your own (kms_key_arn) needs: the Auto Scaling service-linked role (EBS), CloudWatch alarms (the SNS topic) and the CloudWatch Logs service principal."
  value       = data.aws_iam_policy_document.kms_services.json
}

output "deregistration_delay_s" {
  description = "Seconds open streams keep flowing after ECS deregisters a task, before the ALB closes them and SIGTERM follows."
  value       = module.render.deregistration_delay_s
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (given, or created with the e-mail subscriptions)."
  value       = module.alarms.alarm_topic_arn
}

output "alarm_arns" {
  description = "CloudWatch alarms by purpose."
  value       = module.alarms.alarm_arns
}
