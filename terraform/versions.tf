terraform {
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70.0, < 7.0.0"
    }
  }

  # Configure a remote backend (S3 + lockfile) per environment, e.g.:
  # backend "s3" { bucket = "my-tf-state" key = "hws/terraform.tfstate" region = "us-east-1" use_lockfile = true }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Project = "hosted-whisper-streaming", ManagedBy = "terraform" }, var.tags)
  }
}
