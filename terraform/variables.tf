variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name prefix for every resource (short: ALB names are limited)."
  type        = string
  default     = "hws"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "domain_name" {
  description = "DNS name for the gRPC endpoint, e.g. stt.example.com."
  type        = string
}

variable "hosted_zone_name" {
  description = "Route 53 public hosted zone that contains domain_name, e.g. example.com."
  type        = string
}

variable "allowed_cidrs" {
  description = "IPv4 CIDRs allowed to connect to the endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "instance_type" {
  description = "GPU instance type: g4dn.xlarge (T4 16 GB), g5.xlarge (A10G 24 GB) or g6.xlarge (L4 24 GB)."
  type        = string
  default     = "g4dn.xlarge"

  validation {
    condition     = contains(["g4dn.xlarge", "g5.xlarge", "g6.xlarge", "g4dn.2xlarge", "g5.2xlarge", "g6.2xlarge"], var.instance_type)
    error_message = "instance_type must be one of g4dn.xlarge, g5.xlarge, g6.xlarge (or their 2xlarge sizes)."
  }
}

variable "image_tag" {
  description = "Tag of the image in the project's ECR repository (tags are immutable: use a version or git SHA)."
  type        = string
  default     = "latest-release"
}

variable "image" {
  description = "Full image reference overriding the ECR repository + image_tag (null = use ECR)."
  type        = string
  default     = null
}

variable "model" {
  description = "HWS_MODEL override (e.g. large-v3 to download at start, which needs egress_mode nat_gateway). null = the model baked into the image."
  type        = string
  default     = null
}

variable "compute_type" {
  description = "HWS_COMPUTE_TYPE on the GPU (float16 for T4/A10G/L4; int8_float16 to save memory)."
  type        = string
  default     = "float16"
}

variable "max_streams" {
  description = "HWS_MAX_STREAMS per task (one task per GPU)."
  type        = number
  default     = 16
}

variable "grace_period_s" {
  description = "HWS_GRACE_PERIOD_S: drain time for open streams on stop. stopTimeout and the ALB deregistration delay are derived from it (<= 110 s: ECS on EC2 caps stopTimeout at 120 s)."
  type        = number
  default     = 30
}

variable "model_load_budget_s" {
  description = "Seconds a new task gets to download/load its model before ALB health checks count."
  type        = number
  default     = 600
}

variable "egress_mode" {
  description = "Private subnet egress: nat_gateway, vpc_endpoints or both (see modules/network)."
  type        = string
  default     = "nat_gateway"
}

variable "az_count" {
  description = "Number of Availability Zones."
  type        = number
  default     = 2
}

variable "min_tasks" {
  description = "Minimum number of tasks (GPUs)."
  type        = number
  default     = 1
}

variable "max_tasks" {
  description = "Maximum number of tasks (GPUs)."
  type        = number
  default     = 3
}

variable "requests_per_target" {
  description = "Optional ALBRequestCountPerTarget scaling target (streams started per minute per task). null = CPU tracking only."
  type        = number
  default     = null
}

variable "metrics_allowed_cidrs" {
  description = "CIDRs allowed to scrape task /metrics on port 8000 (e.g. a Prometheus in the VPC)."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of the container logs in days."
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "Optional customer-managed KMS key for logs, ECR and EBS (null = AWS-managed encryption)."
  type        = string
  default     = null
}

variable "enable_deletion_protection" {
  description = "ALB deletion protection (false so `terraform destroy` works in one go)."
  type        = bool
  default     = false
}

variable "alb_access_logs_bucket" {
  description = "Optional S3 bucket for ALB access logs."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "api_keys_secret_arn" {
  description = "ARN of a Secrets Manager secret whose value is the clients' API keys, comma-separated; null: no authentication."
  type        = string
  default     = null
}
