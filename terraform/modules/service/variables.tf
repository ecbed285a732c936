variable "name" {
  description = "Service name and prefix for its resources."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster ARN."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name (for the autoscaling resource ID)."
  type        = string
}

variable "capacity_provider_name" {
  description = "Capacity provider to place tasks on (the gpu_cluster output, which depends on the cluster association)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the tasks."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for the task ENIs (awsvpc)."
  type        = list(string)
}

variable "alb_security_group_id" {
  description = "Security group of the ALB: the only source allowed to reach the gRPC port."
  type        = string
}

variable "target_group_arn" {
  description = "ALB target group (protocol_version GRPC, target_type ip)."
  type        = string
}

variable "alb_arn_suffix" {
  description = "ALB ARN suffix, for request-count based scaling."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "Target group ARN suffix, for request-count based scaling."
  type        = string
}

variable "container_definitions_json" {
  description = "Container definitions JSON (render module output container_definitions_json)."
  type        = string
}

variable "container_name" {
  description = "Container that receives ALB traffic."
  type        = string
}

variable "grpc_port" {
  description = "Container gRPC port."
  type        = number
  default     = 50051
}

variable "metrics_port" {
  description = "Container metrics port."
  type        = number
  default     = 8000
}

variable "metrics_allowed_cidrs" {
  description = "CIDRs allowed to scrape /metrics on the tasks (e.g. a Prometheus in the VPC). Empty = nobody."
  type        = list(string)
  default     = []
}

variable "health_check_grace_period_s" {
  description = "Seconds ECS ignores ALB health checks after a task starts (model download + load)."
  type        = number
  default     = 600

  validation {
    condition     = var.health_check_grace_period_s >= 60
    error_message = "health_check_grace_period_s must be at least 60 s: model load takes far longer than 5 s."
  }
}

variable "log_group_name" {
  description = "CloudWatch log group for the container logs (must match the container definition)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the container log group in days."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "Optional KMS key ARN for the log group (null = CloudWatch default encryption)."
  type        = string
  default     = null
}

variable "ecr_repository_arn" {
  description = "ECR repository the execution role may pull from."
  type        = string
}

variable "desired_count" {
  description = "Initial number of tasks (autoscaling adjusts it afterwards)."
  type        = number
  default     = 1
}

variable "min_count" {
  description = "Minimum number of tasks for service autoscaling."
  type        = number
  default     = 1
}

variable "max_count" {
  description = "Maximum number of tasks for service autoscaling (one GPU per task)."
  type        = number
  default     = 3
}

variable "cpu_target_percent" {
  description = "Target average CPU utilisation for target tracking."
  type        = number
  default     = 60
}

variable "requests_per_target" {
  description = "Optional ALBRequestCountPerTarget target (requests per minute per task; for gRPC every stream is one request). null = CPU tracking only."
  type        = number
  default     = null
}

variable "scale_in_cooldown_s" {
  description = "Cooldown after a scale-in (long: scale-in drains streams)."
  type        = number
  default     = 600
}

variable "scale_out_cooldown_s" {
  description = "Cooldown after a scale-out."
  type        = number
  default     = 120
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "api_keys_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the API keys (the task execution role may read only it); null: none."
  type        = string
  default     = null
}
