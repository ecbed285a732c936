output "alb_arn" {
  description = "ARN of the load balancer."
  value       = aws_lb.this.arn
}

output "alb_arn_suffix" {
  description = "ARN suffix of the load balancer (CloudWatch / ALBRequestCountPerTarget)."
  value       = aws_lb.this.arn_suffix
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "security_group_id" {
  description = "Security group of the ALB (the only source allowed to reach the tasks)."
  value       = aws_security_group.alb.id
}

output "target_group_arn" {
  description = "ARN of the gRPC target group. Depends on the HTTPS listener: ECS refuses a target group that no listener uses."
  value       = aws_lb_target_group.grpc.arn
  depends_on  = [aws_lb_listener.https]
}

output "target_group_arn_suffix" {
  description = "ARN suffix of the target group (ALBRequestCountPerTarget)."
  value       = aws_lb_target_group.grpc.arn_suffix
}

output "https_listener_arn" {
  description = "ARN of the HTTPS listener."
  value       = aws_lb_listener.https.arn
}

output "certificate_arn" {
  description = "ARN of the validated ACM certificate."
  value       = aws_acm_certificate_validation.this.certificate_arn
}

output "grpc_endpoint" {
  description = "host:port for gRPC clients (TLS)."
  value       = "${var.domain_name}:443"
}
