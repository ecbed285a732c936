output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = aws_ecs_cluster.this.arn
}

output "capacity_provider_name" {
  description = "Capacity provider name. Depends on the cluster association so that services using it are destroyed before the association, the capacity provider and the ASG."
  value       = aws_ecs_capacity_provider.this.name
  depends_on  = [aws_ecs_cluster_capacity_providers.this]
}

output "autoscaling_group_name" {
  description = "Name of the GPU Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "autoscaling_group_arn" {
  description = "ARN of the GPU Auto Scaling group."
  value       = aws_autoscaling_group.this.arn
}

output "launch_template_id" {
  description = "ID of the launch template."
  value       = aws_launch_template.this.id
}

output "ami_id" {
  description = "AMI the launch template uses."
  value       = local.ami_id
}

output "instance_security_group_id" {
  description = "Security group of the container instances."
  value       = aws_security_group.instance.id
}

output "instance_role_arn" {
  description = "IAM role ARN of the container instances."
  value       = aws_iam_role.instance.arn
}
