output "alarm_arns" {
  description = "ARNs of the alarms by purpose."
  value = {
    unhealthy_hosts          = aws_cloudwatch_metric_alarm.unhealthy_hosts.arn
    alb_5xx                  = aws_cloudwatch_metric_alarm.alb_5xx.arn
    target_connection_errors = aws_cloudwatch_metric_alarm.target_connection_errors.arn
    running_below_desired    = aws_cloudwatch_metric_alarm.running_below_desired.arn
    stream_utilization       = aws_cloudwatch_metric_alarm.stream_utilization.arn
    final_latency            = aws_cloudwatch_metric_alarm.final_latency.arn
  }
}
