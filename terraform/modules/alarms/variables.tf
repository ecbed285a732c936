variable "name" {
  description = "Prefix of the alarm names."
  type        = string
}

variable "alb_arn_suffix" {
  description = "ALB ARN suffix (CloudWatch LoadBalancer dimension)."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "Target group ARN suffix (CloudWatch TargetGroup dimension)."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name (Container Insights ClusterName dimension)."
  type        = string
}

variable "service_name" {
  description = "ECS service name (Container Insights ServiceName dimension)."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the server's EMF metrics (HWS_EMF_NAMESPACE)."
  type        = string
  default     = "HWS"
}

variable "metrics_service" {
  description = "Service dimension of the server's EMF metrics (HWS_EMF_SERVICE)."
  type        = string
}

variable "alarm_topic_arn" {
  description = "SNS topic for alarm and OK notifications; null: the module creates one (<name>-alarms) and subscribes alarm_email_addresses."
  type        = string
  default     = null
}

variable "alarm_email_addresses" {
  description = "E-mail addresses subscribed to the created topic (only when alarm_topic_arn is null). Each must confirm the subscription."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the created topic (its policy must let cloudwatch.amazonaws.com use it); null: unencrypted."
  type        = string
  default     = null
}

variable "emf_enabled" {
  description = "Whether the tasks publish EMF metrics (HWS_EMF_INTERVAL_S > 0): only then is a missing StreamUtilization an alarm."
  type        = bool
  default     = true
}

variable "metric_missing_minutes" {
  description = "Minutes tasks may run without a StreamUtilization sample before the scaling-metric-missing alarm fires."
  type        = number
  default     = 10

  validation {
    condition     = var.metric_missing_minutes >= 3 && var.metric_missing_minutes <= 60
    error_message = "metric_missing_minutes must be between 3 and 60."
  }
}

variable "deployment_alarms" {
  description = "Which of these alarms ECS watches during a rollout and rolls back on (output deployment_alarm_names): any of unhealthy_hosts, alb_5xx, target_connection_errors, final_latency."
  type        = list(string)
  default     = ["alb_5xx", "target_connection_errors"]

  validation {
    condition     = alltrue([for a in var.deployment_alarms : contains(["unhealthy_hosts", "alb_5xx", "target_connection_errors", "final_latency"], a)])
    error_message = "deployment_alarms may name unhealthy_hosts, alb_5xx, target_connection_errors and final_latency only."
  }
}

variable "unhealthy_minutes" {
  description = "Minutes a target must stay unhealthy before the alarm fires (longer than a model load)."
  type        = number
  default     = 15

  validation {
    condition     = var.unhealthy_minutes >= 1 && var.unhealthy_minutes <= 60
    error_message = "unhealthy_minutes must be between 1 and 60."
  }
}

variable "below_desired_minutes" {
  description = "Minutes running tasks may stay below desired before the alarm fires (a new GPU instance and a model load take several)."
  type        = number
  default     = 15

  validation {
    condition     = var.below_desired_minutes >= 1 && var.below_desired_minutes <= 60
    error_message = "below_desired_minutes must be between 1 and 60."
  }
}

variable "alb_5xx_threshold" {
  description = "ALB-generated 5xx responses per 5 minutes above which the alarm fires."
  type        = number
  default     = 5
}

variable "stream_utilization_alarm" {
  description = "Average StreamUtilization (0-1) at or above which, for 10 minutes, the alarm fires."
  type        = number
  default     = 0.9

  validation {
    condition     = var.stream_utilization_alarm > 0 && var.stream_utilization_alarm <= 1
    error_message = "stream_utilization_alarm must be in (0, 1]."
  }
}

variable "final_latency_p95_alarm_s" {
  description = "Final-result latency p95 in seconds above which, for 10 minutes, the alarm fires."
  type        = number
  default     = 1.5
}

variable "tags" {
  description = "Tags added to every alarm."
  type        = map(string)
  default     = {}
}
