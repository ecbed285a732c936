variable "name" {
  description = "Name prefix for all network resources."
  type        = string
}

variable "cidr_block" {
  description = "VPC IPv4 CIDR block."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0))
    error_message = "cidr_block must be a valid IPv4 CIDR."
  }
}

variable "az_count" {
  description = "Number of Availability Zones to spread public and private subnets over (>= 2, the ALB needs two)."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6
    error_message = "az_count must be between 2 and 6."
  }
}

variable "availability_zones" {
  description = "Optional explicit AZ names (e.g. [\"us-east-1a\", \"us-east-1b\"]); empty = the first az_count available zones. Pin them where a GPU instance type is not offered in every zone."
  type        = list(string)
  default     = []
}

variable "egress_mode" {
  description = "How private subnets reach AWS APIs and the internet: nat_gateway (NAT; needed to download models from Hugging Face at runtime), vpc_endpoints (no internet: ECR api/dkr, logs, ECS, SSM, STS interface endpoints + S3 gateway; bake the model into the image) or both."
  type        = string
  default     = "nat_gateway"

  validation {
    condition     = contains(["nat_gateway", "vpc_endpoints", "both"], var.egress_mode)
    error_message = "egress_mode must be nat_gateway, vpc_endpoints or both."
  }
}

variable "single_nat_gateway" {
  description = "One shared NAT gateway (cheaper) instead of one per AZ (survives an AZ outage)."
  type        = bool
  default     = true
}

variable "interface_endpoint_services" {
  description = "Service short names for interface VPC endpoints when egress_mode includes vpc_endpoints."
  type        = list(string)
  default     = ["ecr.api", "ecr.dkr", "logs", "ecs", "ecs-agent", "ecs-telemetry", "ssm", "ssmmessages", "ec2messages", "sts"]
}

variable "secrets_manager_endpoint" {
  description = "Add a Secrets Manager interface endpoint when egress_mode includes vpc_endpoints (needed when the task reads its API keys from Secrets Manager)."
  type        = bool
  default     = false
}

variable "flow_logs_retention_days" {
  description = "Retention of the VPC flow log group in days."
  type        = number
  default     = 365
}

variable "flow_logs_traffic_type" {
  description = "Flow log traffic type: ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_logs_traffic_type)
    error_message = "flow_logs_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

variable "kms_key_arn" {
  description = "Optional KMS key ARN for the flow log group (null = CloudWatch default encryption)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
