output "container_definition" {
  description = "The HWS container definition as an object."
  value       = local.container_definition
}

output "container_definitions_json" {
  description = "JSON list for aws_ecs_task_definition.container_definitions."
  value       = jsonencode([local.container_definition])
}

output "container_name" {
  description = "Name of the container (for the ECS service load_balancer block)."
  value       = var.name
}

output "grpc_port" {
  description = "Container gRPC port (ALB target group port)."
  value       = var.grpc_port
}

output "metrics_port" {
  description = "Container metrics port."
  value       = var.metrics_port
}

output "environment" {
  description = "Container environment as a map."
  value       = local.environment_map
}

output "grace_period_s" {
  description = "HWS_GRACE_PERIOD_S given to the server."
  value       = var.grace_period_s
}

output "stop_timeout_s" {
  description = "Container stopTimeout: grace + margin after SIGTERM."
  value       = local.stop_timeout_s
}

output "deregistration_delay_s" {
  description = "ALB target group deregistration delay, validated to outlast the stream age and its overrun: open streams end at their age and resume elsewhere before the ALB closes what is left and ECS sends SIGTERM."
  value       = var.deregistration_delay_s
}

output "client_keep_alive_s" {
  description = "ALB client keep-alive, validated to outlast the stream age and its overrun."
  value       = var.client_keep_alive_s
}

output "max_stream_age_s" {
  description = "HWS_MAX_STREAM_AGE_S given to the server (0: off)."
  value       = var.max_stream_age_s
}

output "emf_namespace" {
  description = "CloudWatch namespace of the EMF metrics."
  value       = var.emf_namespace
}

output "emf_service" {
  description = "Value of the Service dimension of the EMF metrics (the container name)."
  value       = var.name
}

output "health_check_grace_period_s" {
  description = "ECS service health_check_grace_period_seconds sized for model load."
  value       = var.model_load_budget_s
}

output "ecs_agent_config" {
  description = "ECS agent settings written to /etc/ecs/ecs.config."
  value       = local.ecs_agent_config
}

output "user_data" {
  description = "Instance user data (plain text)."
  value       = local.user_data
}

output "user_data_base64" {
  description = "Instance user data, base64 (for aws_launch_template.user_data)."
  value       = base64encode(local.user_data)
}
