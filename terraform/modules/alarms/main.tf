# CloudWatch alarms for the service behind the ALB: the load balancer's view (unhealthy
# targets, 5xx, connection errors), ECS's (running tasks below desired) and the server's own
# EMF metrics (stream utilisation, final-result latency p95, and the scaling metric going
# missing). Actions go to the SNS topic given (alarm_topic_arn) or to one created here, with
# the e-mail subscriptions in alarm_email_addresses.

# The topic's messages name alarms and their states only. CloudWatch can publish to an
# encrypted topic only when the key is a customer-managed one whose policy lets
# cloudwatch.amazonaws.com use it (the root kms.tf key has that statement); the AWS-managed
# alias/aws/sns key does not.
resource "aws_sns_topic" "this" {
  #checkov:skip=CKV_AWS_26:Encrypted with the customer-managed kms_key_arn when one is given; CloudWatch cannot publish to a topic under the AWS-managed SNS key, and the messages carry alarm names and states only.
  count = var.alarm_topic_arn == null ? 1 : 0

  name              = "${var.name}-alarms"
  kms_master_key_id = var.kms_key_arn

  tags = var.tags
}

# E-mail subscriptions stay "pending confirmation" until each address clicks the link AWS
# sends: until then nothing reaches it (docs/operations.md).
resource "aws_sns_topic_subscription" "email" {
  for_each = var.alarm_topic_arn == null ? toset(var.alarm_email_addresses) : toset([])

  topic_arn = aws_sns_topic.this[0].arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  topic_arn = var.alarm_topic_arn != null ? var.alarm_topic_arn : aws_sns_topic.this[0].arn
  actions   = [local.topic_arn]
  lb        = { LoadBalancer = var.alb_arn_suffix }
  tg        = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.target_group_arn_suffix }
  ecs       = { ClusterName = var.cluster_name, ServiceName = var.service_name }
  emf       = { Service = var.metrics_service }
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

# The scaling metric stops arriving while tasks run (EMF turned off, the awslogs driver or the
# log group broken, the server wedged before its first line): target tracking then has
# nothing to act on and scaling stops without a sound. Both series are filled with 0 where a
# minute has no data, so "no StreamUtilization sample while RunningTaskCount >= 1" is 1 and
# a service at zero tasks is 0 (quiet). treat_missing_data = breaching covers the case where
# the expression itself has no data at all (neither metric exists: Container Insights off
# and no EMF), where nothing else would notice either.
resource "aws_cloudwatch_metric_alarm" "stream_metric_missing" {
  count = var.emf_enabled ? 1 : 0

  alarm_name          = "${var.name}-scaling-metric-missing"
  alarm_description   = "Tasks run but no StreamUtilization sample (the metric service autoscaling tracks) arrived for ${var.metric_missing_minutes} minutes: scaling is blind. Check the task logs for EMF lines (HWS_EMF_INTERVAL_S > 0) and the log group."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = var.metric_missing_minutes
  datapoints_to_alarm = var.metric_missing_minutes
  treat_missing_data  = "breaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id          = "blind"
    expression  = "IF(FILL(running, 0) >= 1 AND FILL(samples, 0) == 0, 1, 0)"
    label       = "Tasks running without a scaling metric"
    return_data = true
  }

  metric_query {
    id = "samples"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "StreamUtilization"
      dimensions  = local.emf
      stat        = "SampleCount"
      period      = 60
    }
  }

  metric_query {
    id = "running"

    metric {
      namespace   = "ECS/ContainerInsights"
      metric_name = "RunningTaskCount"
      dimensions  = local.ecs
      stat        = "Maximum"
      period      = 60
    }
  }

  tags = var.tags
}
