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

  validation {
    condition     = !can(regex("^(ecs|aws|fargate)", var.name))
    error_message = "name must not start with ecs, aws or fargate: the capacity provider is named <name>-gpu and AWS refuses those prefixes."
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
  description = "Tag of the image in the project's ECR repository: a version or git SHA. The repository's tags are IMMUTABLE, so there is no default (a moving tag such as latest cannot be pushed twice). Required unless image is set."
  type        = string
  default     = null

  validation {
    condition     = var.image_tag != null || var.image_digest != null || var.image != null
    error_message = "Set image_tag (a version or git SHA pushed to the ECR repository), image_digest or image."
  }

  validation {
    condition     = var.image_tag == null || !can(regex("^latest", coalesce(var.image_tag, "-")))
    error_message = "image_tag must name one build (a version or git SHA), not a moving tag such as latest."
  }
}

variable "image_digest" {
  description = "Digest of the image in the project's ECR repository (sha256:<64 hex>, as `docker push` or `aws ecr describe-images` print it): the task definition then names <repository>@<digest>, which no tag change can move. Takes precedence over image_tag."
  type        = string
  default     = null

  validation {
    condition     = var.image_digest == null || can(regex("^sha256:[0-9a-f]{64}$", coalesce(var.image_digest, "-")))
    error_message = "image_digest must be sha256: followed by 64 lowercase hex digits."
  }
}

variable "image" {
  description = "Full image reference overriding the ECR repository (null = use ECR with image_digest or image_tag): registry/repo@sha256:<64 hex> (pinned by digest, recommended) or registry/repo:tag with a tag that names one build (not latest)."
  type        = string
  default     = null

  validation {
    condition = var.image == null || can(regex("^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$", coalesce(var.image, "-"))) || (
      can(regex("^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", coalesce(var.image, "-"))) && !can(regex(":latest$", coalesce(var.image, "-")))
    )
    error_message = "image must be repo@sha256:<64 hex digits> (pinned by digest) or repo:tag with a tag naming one build (not latest, not omitted)."
  }
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
  description = "HWS_GRACE_PERIOD_S: the server's drain after SIGTERM; stopTimeout is grace + 10 s. Behind the ALB, SIGTERM comes only after the deregistration delay (see deregistration_delay_s)."
  type        = number
  default     = 30
}

variable "max_stream_age_s" {
  description = "HWS_MAX_STREAM_AGE_S: the server ends a stream at its first pause after this age with UNAVAILABLE and final_offset_s; hws-client and hws.client.stream_resumable resume it through the ALB on a healthy task, losing and repeating nothing. This is what lets a deploy or scale-in cut no stream (see deregistration_delay_s). 0: off. Not applied to the compat AudioTranscriberService, whose clients cannot resume."
  type        = number
  default     = 300
}

variable "max_stream_age_overrun_s" {
  description = "HWS_MAX_STREAM_AGE_OVERRUN_S: a stream still in an utterance this long after max_stream_age_s ends mid-utterance (the utterance finalised up to there), in the same resumable way."
  type        = number
  default     = 60
}

variable "deregistration_delay_s" {
  description = "ALB deregistration delay. ECS stops a task behind the ALB in this order: deregister (no new streams), wait this long while open streams continue, the ALB closes what is left, then SIGTERM. Must be at least max_stream_age_s + max_stream_age_overrun_s + 30 (validated), so every open stream has ended at its age and resumed elsewhere before the cut; a task with no open stream deregisters at once, so a longer delay costs only as long as streams are open."
  type        = number
  default     = 420

  validation {
    condition     = var.deregistration_delay_s >= 0 && var.deregistration_delay_s <= 3600
    error_message = "deregistration_delay_s must be between 0 and 3600 (the ALB maximum)."
  }
}

variable "client_keep_alive_s" {
  description = "ALB client keep-alive: the ALB closes a client connection, and every stream on it, this long after it opened (AWS default 3600 s, set here explicitly). Must exceed max_stream_age_s + max_stream_age_overrun_s + 30 (validated): a resuming client opens one connection per stream. Compat clients, which cannot resume, are cut at it."
  type        = number
  default     = 3600
}

variable "emf_interval_s" {
  description = "Seconds between the server's CloudWatch EMF load lines (StreamUtilization, ActiveStreams, QueueDepth, FinalLatencyP95). 0 turns them off, and with them stream-based scaling and two alarms."
  type        = number
  default     = 15
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

variable "availability_zones" {
  description = "Explicit AZ names (e.g. [\"us-east-1a\", \"us-east-1b\"]); empty = the first az_count available zones. Pin them where the GPU instance type is not offered in every zone."
  type        = list(string)
  default     = []
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cheaper; an outage of its AZ cuts every AZ's egress) or, false, one per AZ."
  type        = bool
  default     = true
}

variable "ami_id" {
  description = "Pin the GPU AMI (recommended in production). null = the recommended ECS GPU AMI from SSM, read at every plan; a new one is rolled out to the fleet by an instance refresh."
  type        = string
  default     = null
}

variable "min_tasks" {
  description = "Minimum number of tasks (GPUs), at least 1: at 0 no task publishes StreamUtilization, so target tracking has no metric to scale out on and the service stays at zero."
  type        = number
  default     = 1

  validation {
    condition     = var.min_tasks >= 1 && floor(var.min_tasks) == var.min_tasks
    error_message = "min_tasks must be a whole number of at least 1: the service scales on StreamUtilization, which only running tasks publish, so from 0 tasks it would never scale out again. To stop serving, destroy the environment or set the service's desired count to 0 by hand."
  }
}

variable "max_tasks" {
  description = "Maximum number of tasks (GPUs). The GPU instance quota must cover max_tasks + 1 instances (checked at plan, check_gpu_quota)."
  type        = number
  default     = 3

  validation {
    condition     = var.max_tasks >= var.min_tasks && floor(var.max_tasks) == var.max_tasks
    error_message = "max_tasks must be a whole number and at least min_tasks."
  }
}

variable "check_gpu_quota" {
  description = "Check at plan that the region's EC2 quota \"Running On-Demand G and VT instances\" (vCPUs) covers max_tasks + 1 instances of instance_type (4 vCPUs per *.xlarge, 8 per *.2xlarge); needs servicequotas:GetServiceQuota. false skips the check."
  type        = bool
  default     = true
}

variable "managed_scaling_target_capacity" {
  description = "ECS managed scaling target capacity (percent of GPU instances that run tasks). 100 (default): no idle instance; a scale-out waits for an instance to boot (about 5 min) before the model loads. Below 100 keeps warm spare instances, e.g. 50 = one idle instance per running task, each at the instance's hourly price, and a scale-out then only loads the model."
  type        = number
  default     = 100

  validation {
    condition     = var.managed_scaling_target_capacity >= 10 && var.managed_scaling_target_capacity <= 100
    error_message = "managed_scaling_target_capacity must be between 10 and 100."
  }
}

variable "load_balancing_algorithm_type" {
  description = "ALB routing of new streams: least_outstanding_requests (default: to the task with the fewest open streams) or round_robin (in turn, whatever each task holds)."
  type        = string
  default     = "least_outstanding_requests"
}

variable "wait_for_steady_state" {
  description = "`terraform apply` waits for each rollout and fails when it does not complete (timeout, stopped or rolled-back deployment). false returns at once, and nothing then reports a failed rollout: run `aws ecs wait services-stable` and check the deployment yourself (docs/operations.md)."
  type        = bool
  default     = true
}

variable "deployment_timeout_minutes" {
  description = "Minutes apply waits for a rollout before it fails: an instance launch (about 5), the model load (model_load_budget_s), the old task's deregistration delay and the deployment alarms' bake time must fit."
  type        = number
  default     = 45
}

variable "requests_per_target" {
  description = "Optional extra ALBRequestCountPerTarget scaling target (streams started per minute per task). null = none."
  type        = number
  default     = null
}

variable "stream_utilization_target" {
  description = "Target average StreamUtilization (open streams / max_streams, 0-1) over the tasks: the service scales on it."
  type        = number
  default     = 0.7
}

variable "stream_utilization_alarm" {
  description = "Alarm when the average StreamUtilization stays at or above this for 10 minutes."
  type        = number
  default     = 0.9
}

variable "final_latency_p95_alarm_s" {
  description = "Alarm when the final-result latency p95 stays above this many seconds for 10 minutes."
  type        = number
  default     = 1.5
}

variable "alarm_topic_arn" {
  description = "SNS topic ARN for alarm and OK notifications (e.g. one your on-call tool subscribes to). null: a topic <name>-alarms is created and alarm_email_addresses are subscribed to it."
  type        = string
  default     = null
}

variable "alarm_email_addresses" {
  description = "E-mail addresses subscribed to the created alarm topic (when alarm_topic_arn is null). Each receives a confirmation mail and gets nothing until it confirms."
  type        = list(string)
  default     = []

  validation {
    condition     = var.alarm_topic_arn != null || length(var.alarm_email_addresses) > 0 || var.allow_alarms_without_destination
    error_message = "Alarms must reach someone: set alarm_topic_arn (an SNS topic of yours) or alarm_email_addresses (subscribed to a topic created here). Only for a throw-away environment, set allow_alarms_without_destination = true."
  }
}

variable "allow_alarms_without_destination" {
  description = "Accept an environment whose alarms notify nobody (no alarm_topic_arn, no alarm_email_addresses): the created topic has no subscriber. For throw-away environments only."
  type        = bool
  default     = false
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
  description = "Optional customer-managed KMS key of your own for logs, ECR and EBS (null = AWS-managed encryption). Its key policy must hold the statements in output kms_key_policy_statements_json."
  type        = string
  default     = null
}

variable "create_kms_key" {
  description = "Create a customer-managed KMS key (rotation on) whose policy lets the Auto Scaling service-linked role and CloudWatch Logs use it, and use it instead of kms_key_arn."
  type        = bool
  default     = false
}

variable "ecr_force_delete" {
  description = "Let `terraform destroy` delete the ECR repository while it still holds images. false (default) keeps released images safe; true for throw-away environments."
  type        = bool
  default     = false
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
  description = "Extra tags on every resource, the GPU instances and their volumes included."
  type        = map(string)
  default     = {}
}

variable "api_keys_secret_kms_key_arn" {
  description = "Customer-managed KMS key that encrypts the API keys secret (the execution role gets kms:Decrypt on it); null: the secret uses the AWS-managed key."
  type        = string
  default     = null
}

variable "api_keys_secret_arn" {
  description = "ARN of a Secrets Manager secret whose value is the clients' API keys, comma-separated; null: no authentication."
  type        = string
  default     = null
}
