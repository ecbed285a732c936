# CloudWatch alarms for the service behind the ALB: the load balancer's view (unhealthy
# targets, 5xx, connection errors), ECS's (running tasks below desired) and the server's own
# EMF metrics (stream utilisation, final-result latency p95). Actions go to an optional SNS topic.

locals {
  actions = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
  lb      = { LoadBalancer = var.alb_arn_suffix }
  tg      = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.target_group_arn_suffix }
  ecs     = { ClusterName = var.cluster_name, ServiceName = var.service_name }
  emf     = { Service = var.metrics_service }
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  alarm_name          = "${var.name}-unhealthy-targets"
  alarm_description   = "A target has failed the ALB's Transcriber/Ready health check for ${var.unhealthy_minutes} minutes (longer than a model load)."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = local.tg
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = var.unhealthy_minutes
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "alb_5xx" {
  alarm_name          = "${var.name}-alb-5xx"
  alarm_description   = "The ALB answered with 5xx itself (no healthy target, target reset or timeout) more than ${var.alb_5xx_threshold} times in 5 minutes. gRPC errors from the server travel as grpc-status with HTTP 200 and are not counted here."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_ELB_5XX_Count"
  dimensions          = local.lb
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alb_5xx_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "target_connection_errors" {
  alarm_name          = "${var.name}-target-connection-errors"
  alarm_description   = "The ALB could not open connections to targets (task gone, security group, port)."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetConnectionErrorCount"
  dimensions          = local.tg
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  tags = var.tags
}

# Container Insights (enabled on the cluster) publishes both counts per service.
resource "aws_cloudwatch_metric_alarm" "running_below_desired" {
  alarm_name          = "${var.name}-running-below-desired"
  alarm_description   = "Fewer tasks run than the service wants for ${var.below_desired_minutes} minutes (no GPU capacity, failing starts, crash loop)."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = var.below_desired_minutes
  treat_missing_data  = "breaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id          = "missing"
    expression  = "desired - running"
    label       = "Tasks missing"
    return_data = true
  }

  metric_query {
    id = "desired"

    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "DesiredTaskCount"
      dimensions  = local.ecs
      stat        = "Maximum"
      period      = 60
    }
  }

  metric_query {
    id = "running"

    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = local.ecs
      stat        = "Minimum"
      period      = 60
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "stream_utilization" {
  alarm_name          = "${var.name}-streams-near-limit"
  alarm_description   = "Average StreamUtilization (open streams / HWS_MAX_STREAMS) at or above ${var.stream_utilization_alarm} for 10 minutes: scaling is at max_tasks or cannot add GPUs; new streams are about to be refused (RESOURCE_EXHAUSTED)."
  namespace           = var.metrics_namespace
  metric_name         = "StreamUtilization"
  dimensions          = local.emf
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 10
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.stream_utilization_alarm
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "final_latency" {
  alarm_name          = "${var.name}-final-latency-p95"
  alarm_description   = "Final-result latency p95 (end of utterance to final sent, per task) above ${var.final_latency_p95_alarm_s} s for 10 minutes: the GPU cannot keep up."
  namespace           = var.metrics_namespace
  metric_name         = "FinalLatencyP95"
  dimensions          = local.emf
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.final_latency_p95_alarm_s
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  tags = var.tags
}
