variable "name" {
  description = "Name prefix for cluster resources; the capacity provider is \"<name>-gpu\"."
  type        = string

  validation {
    condition     = !can(regex("(?i)^(ecs|aws|fargate)", var.name))
    error_message = "name must not start with ecs, aws or fargate: AWS refuses capacity provider names with those prefixes."
  }
}

variable "cluster_name" {
  description = "ECS cluster name (must match ECS_CLUSTER in user_data_base64)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the instances."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (two or more AZs) for the Auto Scaling group."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Give at least two private subnets (two AZs)."
  }
}

variable "instance_type" {
  description = "GPU instance type (one NVIDIA GPU each: g4dn.xlarge T4, g5.xlarge A10G, g6.xlarge L4)."
  type        = string
  default     = "g4dn.xlarge"

  validation {
    condition     = can(regex("^(g4dn|g5|g6|g6e|p3|p4d|p5)\\.", var.instance_type))
    error_message = "instance_type must be an NVIDIA GPU instance type (g4dn, g5, g6, g6e, p3, p4d, p5)."
  }
}

variable "ami_id" {
  description = "Pin the AMI (recommended for production: AMI changes then happen only when you change this). null = the recommended ECS-optimised AL2023 GPU AMI read from SSM at every plan; a new one makes a new launch template version, which instance_refresh rolls out."
  type        = string
  default     = null
}

variable "ami_ssm_parameter" {
  description = "SSM parameter holding the recommended ECS GPU AMI ID."
  type        = string
  default     = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
}

variable "user_data_base64" {
  description = "Base64 user data that writes /etc/ecs/ecs.config (rendered by the render module)."
  type        = string
}

variable "instance_refresh" {
  description = "Roll the fleet onto each new launch template version (new AMI, new user data) with an ASG instance refresh (launch before terminate, ECS managed draining). false: only new instances get it, and the fleet runs mixed AMIs until you refresh it yourself."
  type        = bool
  default     = true
}

variable "root_volume_size_gb" {
  description = "Root EBS volume size (GB): AMI + Docker images (CUDA image plus baked models are several GB)."
  type        = number
  default     = 100

  validation {
    condition     = var.root_volume_size_gb >= 40
    error_message = "root_volume_size_gb must be at least 40 (the GPU AMI alone needs ~30 GB)."
  }
}

variable "ebs_kms_key_arn" {
  description = "Optional KMS key ARN for the root volume (null = the account's default EBS key)."
  type        = string
  default     = null
}

variable "min_size" {
  description = "Minimum instances in the Auto Scaling group."
  type        = number
  default     = 1
}

variable "max_size" {
  description = "Maximum instances in the Auto Scaling group (>= the service's max task count + 1 for rolling deployments)."
  type        = number
  default     = 4
}

variable "managed_scaling_target_capacity" {
  description = "ECS managed scaling target capacity in percent: the share of instances that run tasks. 100 = no idle instance (a scale-out waits for a GPU instance to boot, about 5 min, plus the model load); below 100 keeps idle GPU instances as a warm spare, e.g. 50 with one task per instance = one spare per running task, each costing the instance's hourly price."
  type        = number
  default     = 100

  validation {
    condition     = var.managed_scaling_target_capacity > 0 && var.managed_scaling_target_capacity <= 100
    error_message = "managed_scaling_target_capacity must be in (0, 100]."
  }
}

variable "availability_zones" {
  description = "Zones of private_subnet_ids (the network module's availability_zones output): the instance type must be offered in each (checked at plan)."
  type        = list(string)
}

variable "check_gpu_quota" {
  description = "Check at plan that the region's EC2 G/VT (or P) on-demand vCPU quota covers max_size instances (needs servicequotas:GetServiceQuota). false skips it."
  type        = bool
  default     = true
}

variable "instance_warmup_period_s" {
  description = "Seconds a new instance needs before its metrics count (GPU AMI boot + image pull)."
  type        = number
  default     = 300
}

variable "container_insights" {
  description = "Container Insights setting for the cluster: enabled, enhanced or disabled."
  type        = string
  default     = "enabled"

  validation {
    condition     = contains(["enabled", "enhanced", "disabled"], var.container_insights)
    error_message = "container_insights must be enabled, enhanced or disabled."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
