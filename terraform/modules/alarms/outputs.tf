output "alarm_arns" {
  description = "ARNs of the alarms by purpose."
  value = {
    unhealthy_hosts          = aws_cloudwatch_metric_alarm.unhealthy_hosts.arn
    alb_5xx                  = aws_cloudwatch_metric_alarm.alb_5xx.arn
    target_connection_errors = aws_cloudwatch_metric_alarm.target_connection_errors.arn
    running_below_desired    = aws_cloudwatch_metric_alarm.running_below_desired.arn
    stream_utilization       = aws_cloudwatch_metric_alarm.stream_utilization.arn
    final_latency            = aws_cloudwatch_metric_alarm.final_latency.arn
    stream_metric_missing    = one(aws_cloudwatch_metric_alarm.stream_metric_missing[*].arn)
  }
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (given or created)."
  value       = local.topic_arn
}

output "deployment_alarm_names" {
  description = "Names of the alarms ECS watches during a rollout (deployment_alarms)."
  value = [for a in var.deployment_alarms : {
    unhealthy_hosts          = aws_cloudwatch_metric_alarm.unhealthy_hosts.alarm_name
    alb_5xx                  = aws_cloudwatch_metric_alarm.alb_5xx.alarm_name
    target_connection_errors = aws_cloudwatch_metric_alarm.target_connection_errors.alarm_name
    final_latency            = aws_cloudwatch_metric_alarm.final_latency.alarm_name
  }[a]]
}
