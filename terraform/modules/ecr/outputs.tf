output "repository_url" {
  description = "Repository URL (docker push target)."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "Repository ARN (for the task execution role's pull permissions)."
  value       = aws_ecr_repository.this.arn
}

output "repository_name" {
  description = "Repository name."
  value       = aws_ecr_repository.this.name
}

output "registry_id" {
  description = "Registry (account) ID."
  value       = aws_ecr_repository.this.registry_id
}
