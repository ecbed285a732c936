variable "name" {
  description = "Name prefix for the load balancer resources (max 28 characters)."
  type        = string

  validation {
    condition     = length(var.name) <= 28
    error_message = "name must be at most 28 characters (ALB names are limited to 32)."
  }
}

variable "vpc_id" {
  description = "VPC of the load balancer and targets."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets (two or more AZs) for the internet-facing ALB."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "An ALB needs subnets in at least two AZs."
  }
}

variable "domain_name" {
  description = "DNS name clients use (e.g. stt.example.com); gets an ACM certificate and an alias record."
  type        = string
}

variable "hosted_zone_id" {
  description = "Route 53 public hosted zone ID that holds domain_name (certificate validation + alias)."
  type        = string
}

variable "allowed_cidrs" {
  description = "IPv4 CIDRs allowed to reach the ALB on 443 (and 80, which only redirects)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener (TLS 1.2+)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = can(regex("TLS13|TLS-1-2", var.ssl_policy))
    error_message = "Use a TLS 1.2+ policy (ELBSecurityPolicy-TLS13-* or ELBSecurityPolicy-TLS-1-2-*)."
  }
}

variable "target_port" {
  description = "Container gRPC port the target group forwards to."
  type        = number
  default     = 50051
}

variable "target_type" {
  description = "Target type: ip for awsvpc network mode, instance for bridge/host."
  type        = string
  default     = "ip"

  validation {
    condition     = contains(["ip", "instance"], var.target_type)
    error_message = "target_type must be ip or instance."
  }
}

variable "health_check_path" {
  description = "gRPC health check path: Transcriber/Ready returns OK only when the model is loaded and the server is not draining."
  type        = string
  default     = "/hws.transcriber.v1.Transcriber/Ready"
}

variable "health_check_grpc_codes" {
  description = "gRPC status codes counted healthy (0 = OK)."
  type        = string
  default     = "0"
}

variable "health_check_interval_s" {
  description = "Seconds between target health checks."
  type        = number
  default     = 15
}

variable "idle_timeout_s" {
  description = "ALB idle timeout in seconds. Streams can be quiet for a long time and the ALB does not count HTTP/2 PINGs as activity, so this is raised far above the 60 s default (max 4000)."
  type        = number
  default     = 3600

  validation {
    condition     = var.idle_timeout_s >= 300 && var.idle_timeout_s <= 4000
    error_message = "idle_timeout_s must be between 300 and 4000."
  }
}

variable "client_keep_alive_s" {
  description = "ALB client keep-alive: the ALB closes a client connection this long after it opened, whatever its traffic (and so every stream on it). Set explicitly (the AWS default is 3600 s); streams that outlive it must resume (final_offset_s)."
  type        = number
  default     = 3600

  validation {
    condition     = var.client_keep_alive_s >= 60 && var.client_keep_alive_s <= 604800
    error_message = "client_keep_alive_s must be between 60 and 604800 (7 days)."
  }
}

variable "deregistration_delay_s" {
  description = "Seconds a deregistering target keeps its open streams before the ALB closes them. ECS waits this out before it sends SIGTERM; keep it above the server's stream age plus overrun (the render module validates it), so streams end at their age and resume elsewhere first. A target with no open connection deregisters at once."
  type        = number
  default     = 420

  validation {
    condition     = var.deregistration_delay_s >= 0 && var.deregistration_delay_s <= 3600
    error_message = "deregistration_delay_s must be between 0 and 3600."
  }
}

variable "load_balancing_algorithm_type" {
  description = "Target group routing: least_outstanding_requests (a new stream goes to the target with the fewest open streams) or round_robin (AWS default; a new stream may land on a full task while others have room)."
  type        = string
  default     = "least_outstanding_requests"

  validation {
    condition     = contains(["least_outstanding_requests", "round_robin"], var.load_balancing_algorithm_type)
    error_message = "load_balancing_algorithm_type must be least_outstanding_requests or round_robin."
  }
}

variable "certificate_validation_timeout" {
  description = "How long apply waits for ACM DNS validation (AWS provider default 75m). Validation takes minutes when the hosted zone is delegated; longer means it is not."
  type        = string
  default     = "20m"
}

variable "enable_deletion_protection" {
  description = "ALB deletion protection. false by default so `terraform destroy` works in one go."
  type        = bool
  default     = false
}

variable "access_logs_bucket" {
  description = "Optional S3 bucket for ALB access logs (null = disabled)."
  type        = string
  default     = null
}

variable "access_logs_prefix" {
  description = "Key prefix for ALB access logs."
  type        = string
  default     = "alb"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
