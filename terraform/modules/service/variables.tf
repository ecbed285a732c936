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

variable "stream_utilization_target" {
  description = "Target average StreamUtilization (open streams / HWS_MAX_STREAMS, 0-1) over the service's tasks for target tracking."
  type        = number
  default     = 0.7

  validation {
    condition     = var.stream_utilization_target > 0 && var.stream_utilization_target < 1
    error_message = "stream_utilization_target must be between 0 and 1 (exclusive): at 1 new streams are already refused."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the server's EMF metrics (HWS_EMF_NAMESPACE)."
  type        = string
  default     = "HWS"
}

variable "metrics_service" {
  description = "Value of the Service dimension of the server's EMF metrics (HWS_EMF_SERVICE)."
  type        = string
}

variable "cpu_target_percent" {
  description = "Optional second target-tracking policy on average CPU (percent); null = none (CPU does not measure stream load)."
  type        = number
  default     = null
}

variable "requests_per_target" {
  description = "Optional ALBRequestCountPerTarget target (requests per minute per task; for gRPC every stream is one request). null = none."
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

variable "wait_for_steady_state" {
  description = "Make `terraform apply` wait for each rollout and fail when it does not complete (timeout, stopped deployment, rollback). false: apply returns when ECS accepted the change and nothing reports a failed rollout; check it with `aws ecs wait services-stable` and the service's deployments instead."
  type        = bool
  default     = true
}

variable "deployment_timeout_minutes" {
  description = "Minutes `terraform apply` waits for a rollout (create and update): a GPU instance launch, the model load, the old task's deregistration delay and the deployment alarms' bake time must fit."
  type        = number
  default     = 45

  validation {
    condition     = var.deployment_timeout_minutes >= 20 && var.deployment_timeout_minutes <= 180
    error_message = "deployment_timeout_minutes must be between 20 (an instance launch, a model load and a deregistration delay take that) and 180."
  }
}

variable "deployment_alarm_names" {
  description = "CloudWatch alarms ECS watches during a rollout (and its bake time); one in ALARM fails the deployment and rolls it back. Empty: none."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "api_keys_secret_kms_key_arn" {
  description = "Customer-managed KMS key that encrypts the API keys secret: the execution role gets kms:Decrypt on it. null: the secret uses the AWS-managed key."
  type        = string
  default     = null
}

variable "api_keys_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the API keys (the task execution role may read only it); null: none."
  type        = string
  default     = null
}
