variable "name" {
  description = "Repository name."
  type        = string
}

variable "kms_key_arn" {
  description = "Optional customer-managed KMS key ARN (null = AWS-managed KMS key for ECR)."
  type        = string
  default     = null
}

variable "expire_tag_patterns" {
  description = "Tag patterns (e.g. [\"ci-*\"]) whose images expire beyond keep_tagged_images. Empty (default): no tagged image ever expires, so an image a service still runs cannot be deleted under it."
  type        = list(string)
  default     = []
}

variable "keep_tagged_images" {
  description = "Number of images tagged with one of expire_tag_patterns to keep (older ones expire)."
  type        = number
  default     = 20
}

variable "untagged_expiry_days" {
  description = "Days after which untagged images expire."
  type        = number
  default     = 7
}

variable "force_delete" {
  description = "Delete the repository even if it still holds images. false (default): `terraform destroy` stops at a repository with images, so released images are not lost by accident; set true for throw-away environments."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
