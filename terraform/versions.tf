terraform {
  # 1.11: the S3 backend's use_lockfile (backend.hcl.example; experimental in 1.10, GA in
  # 1.11). 1.9 already brought validations that refer to other variables (image / image_tag).
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # One major version. tests/infra checks every argument against the 6.69.1 schema.
      version = "~> 6.69"
    }
  }

  # Remote state, as a partial configuration: the settings live in a file per environment
  # (copy backend.hcl.example) and `terraform init -backend-config=backend.hcl` fills them in.
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.common_tags
  }
}
