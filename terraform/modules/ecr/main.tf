resource "aws_ecr_repository" "this" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }

  tags = var.tags
}

# Lifecycle rules never expire a tagged image unless its tag matches expire_tag_patterns:
# a "keep the last N" rule over every tag can expire the image a service still runs (after N
# newer pushes), and the next task start or scale-out then fails to pull it. Untagged images
# (pushed without a tag, or left behind) expire; images are pushed with an immutable tag.
locals {
  lifecycle_rules = concat(
    [
      {
        rulePriority = 1
        description  = "Expire untagged images after ${var.untagged_expiry_days} days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.untagged_expiry_days
        }
        action = { type = "expire" }
      },
    ],
    length(var.expire_tag_patterns) == 0 ? [] : [
      {
        rulePriority = 2
        description  = "Keep the last ${var.keep_tagged_images} images tagged ${join(", ", var.expire_tag_patterns)}"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = var.expire_tag_patterns
          countType      = "imageCountMoreThan"
          countNumber    = var.keep_tagged_images
        }
        action = { type = "expire" }
      },
    ],
  )
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name

  policy = jsonencode({ rules = local.lifecycle_rules })
}
