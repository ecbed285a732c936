variable "name" {
  description = "Container name (also the ECS service/task family prefix)."
  type        = string
  default     = "hws"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,255}$", var.name))
    error_message = "name may contain letters, digits, '-' and '_' only."
  }
}

variable "image" {
  description = "Full image reference of the HWS server image: registry/repo@sha256:<digest> (pinned) or registry/repo:tag with a tag that names one build."
  type        = string

  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image)) || (!strcontains(var.image, "@") && can(regex(":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", replace(var.image, "/^.*//", ""))) && !can(regex(":latest$", var.image)))
    error_message = "image must be pinned: repo@sha256:<64 hex digits>, or repo:tag with a tag that names one build (not latest, not omitted)."
  }
}

variable "model" {
  description = "HWS_MODEL override. null keeps what the image sets (the baked model, or the embedded tiny.en)."
  type        = string
  default     = null
}

variable "device" {
  description = "HWS_DEVICE: auto, cpu or cuda."
  type        = string
  default     = "cuda"

  validation {
    condition     = contains(["auto", "cpu", "cuda"], var.device)
    error_message = "device must be auto, cpu or cuda."
  }
}

variable "compute_type" {
  description = "HWS_COMPUTE_TYPE: auto, int8, float16, int8_float16 or float32."
  type        = string
  default     = "float16"

  validation {
    condition     = contains(["auto", "int8", "float16", "int8_float16", "float32"], var.compute_type)
    error_message = "compute_type must be auto, int8, float16, int8_float16 or float32."
  }
}

variable "log_level" {
  description = "HWS_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR)."
  type        = string
  default     = "INFO"
}

variable "max_streams" {
  description = "HWS_MAX_STREAMS: concurrent streams one task accepts."
  type        = number
  default     = 16

  validation {
    condition     = var.max_streams >= 1
    error_message = "max_streams must be at least 1."
  }
}

variable "grace_period_s" {
  description = "HWS_GRACE_PERIOD_S: seconds the server drains open streams after SIGTERM (stopTimeout = grace + stop_margin_s). Behind the ALB, SIGTERM comes after the deregistration delay, by when the streams have ended at their age and resumed elsewhere; the drain covers streams that reach the task directly. (The 120 s stopTimeout cap is Fargate's; EC2 has none.)"
  type        = number
  default     = 30

  validation {
    condition     = var.grace_period_s >= 1 && var.grace_period_s <= 600
    error_message = "grace_period_s must be between 1 and 600."
  }
}

variable "max_stream_age_s" {
  description = "HWS_MAX_STREAM_AGE_S: the server ends a stream at its first pause after this age (UNAVAILABLE with final_offset_s; the client library and hws-client resume on another task through the ALB). 0: off, and streams longer than the deregistration delay are cut by the ALB instead."
  type        = number
  default     = 300

  validation {
    condition     = var.max_stream_age_s >= 0 && var.max_stream_age_s <= 3000
    error_message = "max_stream_age_s must be between 0 (off) and 3000 (it must fit under the ALB's 3600 s deregistration delay)."
  }
}

variable "max_stream_age_overrun_s" {
  description = "HWS_MAX_STREAM_AGE_OVERRUN_S: a stream still inside an utterance this long after max_stream_age_s is ended mid-utterance (the utterance finalised up to there), so a speaker who never pauses cannot outlive the deregistration delay."
  type        = number
  default     = 60

  validation {
    condition     = var.max_stream_age_overrun_s >= 0 && var.max_stream_age_overrun_s <= 600
    error_message = "max_stream_age_overrun_s must be between 0 and 600."
  }
}

# A stream lives at most max_stream_age_s + max_stream_age_overrun_s; 30 s more lets its last final
# be decoded and sent before the ALB would cut it.
variable "deregistration_delay_s" {
  description = "ALB deregistration delay: open streams keep flowing this long after ECS deregisters the task, then the ALB closes them and ECS sends SIGTERM. With the stream age limit on it must exceed max_stream_age_s + max_stream_age_overrun_s + 30, so that every open stream has ended at its age and resumed elsewhere first; a target with no open stream finishes deregistering at once."
  type        = number
  default     = 420

  validation {
    condition     = var.deregistration_delay_s >= 0 && var.deregistration_delay_s <= 3600
    error_message = "deregistration_delay_s must be between 0 and 3600 (the ALB maximum)."
  }

  validation {
    condition     = var.max_stream_age_s == 0 || var.deregistration_delay_s >= var.max_stream_age_s + var.max_stream_age_overrun_s + 30
    error_message = "deregistration_delay_s must be at least max_stream_age_s + max_stream_age_overrun_s + 30: a stream must end at its age before the ALB cuts it."
  }
}

variable "client_keep_alive_s" {
  description = "ALB client keep-alive: the ALB closes a client connection this long after it opened, whatever its traffic. A resuming client opens a connection per stream, so it must exceed max_stream_age_s + max_stream_age_overrun_s + 30; clients that cannot resume (the compat protocol) are cut at it."
  type        = number
  default     = 3600

  validation {
    condition     = var.client_keep_alive_s >= 60 && var.client_keep_alive_s <= 604800
    error_message = "client_keep_alive_s must be between 60 and 604800 (7 days)."
  }

  validation {
    condition     = var.max_stream_age_s == 0 || var.client_keep_alive_s >= var.max_stream_age_s + var.max_stream_age_overrun_s + 30
    error_message = "client_keep_alive_s must be at least max_stream_age_s + max_stream_age_overrun_s + 30: the ALB must not close a connection under a stream the server has not ended yet."
  }
}

variable "emf_interval_s" {
  description = "HWS_EMF_INTERVAL_S: seconds between two CloudWatch EMF load lines on stdout (0 turns them off, and with them stream-based scaling and alarms)."
  type        = number
  default     = 15

  validation {
    condition     = var.emf_interval_s >= 0 && var.emf_interval_s <= 300
    error_message = "emf_interval_s must be between 0 and 300."
  }
}

variable "emf_namespace" {
  description = "HWS_EMF_NAMESPACE: CloudWatch namespace of the EMF metrics."
  type        = string
  default     = "HWS"
}

variable "stop_margin_s" {
  description = "Seconds added to the grace period for stopTimeout so the process exits on its own before SIGKILL."
  type        = number
  default     = 10

  validation {
    condition     = var.stop_margin_s >= 1 && var.stop_margin_s <= 60
    error_message = "stop_margin_s must be between 1 and 60."
  }
}

variable "model_load_budget_s" {
  description = "Seconds a new task may take to download/load its model before load-balancer health checks count (ECS health_check_grace_period_seconds)."
  type        = number
  default     = 600

  validation {
    condition     = var.model_load_budget_s >= 60 && var.model_load_budget_s <= 2147483647
    error_message = "model_load_budget_s must be at least 60 seconds (a GPU model load is not 5 s)."
  }
}

variable "grpc_port" {
  description = "HWS_PORT: gRPC port in the container."
  type        = number
  default     = 50051
}

variable "metrics_port" {
  description = "HWS_METRICS_PORT: Prometheus /metrics port in the container."
  type        = number
  default     = 8000
}

variable "metrics_scraped" {
  description = "Whether something outside the task scrapes /metrics (metrics_allowed_cidrs is set): HWS_METRICS_HOST 0.0.0.0. False keeps it on loopback, since nothing in AWS scrapes it (scaling and alarms read the EMF lines on stdout; the ALB checks gRPC health)."
  type        = bool
  default     = false
}

variable "gpu_count" {
  description = "GPUs reserved per task (ECS resourceRequirements type GPU; this is what gets the NVIDIA runtime)."
  type        = number
  default     = 1

  validation {
    condition     = var.gpu_count >= 1
    error_message = "gpu_count must be at least 1: the task must ask for a GPU."
  }
}

variable "cpu" {
  description = "CPU units reserved for the container (1024 = 1 vCPU)."
  type        = number
  default     = 3072
}

variable "memory_reservation_mib" {
  description = "Soft memory reservation (MiB) for the container."
  type        = number
  default     = 12288
}

variable "aws_region" {
  description = "Region for the awslogs driver."
  type        = string
}

variable "log_group_name" {
  description = "CloudWatch log group the awslogs driver writes to."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name written to /etc/ecs/ecs.config as ECS_CLUSTER."
  type        = string
}

variable "api_keys_secret_arn" {
  description = "ARN of a Secrets Manager secret whose value is the API keys, comma-separated; null: no authentication."
  type        = string
  default     = null
}

variable "extra_environment" {
  description = "Extra container environment variables (must not override the HWS_* keys this module sets)."
  type        = map(string)
  default     = {}
}

variable "extra_ecs_agent_config" {
  description = "Extra ECS agent settings appended to /etc/ecs/ecs.config."
  type        = map(string)
  default     = {}
}
