# Customer-managed KMS key for logs, ECR and EBS (optional).
#
# A key used for EBS volumes that the Auto Scaling group creates must let the Auto Scaling
# service-linked role use it (else instances fail to launch), and a key for a log group must
# let the CloudWatch Logs service principal use it (else the log group is not created).
# create_kms_key = true creates a key with that policy. A key of your own (kms_key_arn) needs
# the same statements: output kms_key_policy_statements_json gives them.

data "aws_caller_identity" "current" {}

# The key policy names the Auto Scaling service-linked role, which AWS creates with the
# account's first Auto Scaling group. In an account that never had one, CreateKey refuses
# the policy (MalformedPolicyDocumentException): the precondition on aws_kms_key says so at
# plan, with the command that creates the role.
data "aws_iam_roles" "autoscaling_service_linked" {
  count = var.create_kms_key ? 1 : 0

  name_regex  = "^AWSServiceRoleForAutoScaling$"
  path_prefix = "/aws-service-role/autoscaling.amazonaws.com/"
}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region
}

data "aws_iam_policy_document" "kms_services" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means the key it is attached to, nothing else; writes are limited to the Auto Scaling role and the Logs principal.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means the key it is attached to; it cannot name the key's own ARN before the key exists.
  statement {
    sid = "AutoScalingServiceLinkedRoleUse"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]
    }
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
  }

  statement {
    sid = "AutoScalingServiceLinkedRoleGrants"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]
    }
    actions   = ["kms:CreateGrant"]
    resources = ["*"]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }

  # Alarm notifications to the created SNS topic, encrypted with this key.
  statement {
    sid = "CloudWatchAlarmsToSns"
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid = "CloudWatchLogs"
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means the key it is attached to; the account root statement is the default key policy that lets IAM policies grant access.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means the key it is attached to; it cannot name the key's own ARN before the key exists.
  #checkov:skip=CKV_AWS_109:kms:* for the account root is AWS's default key policy statement: without it IAM policies cannot grant use of the key and the key becomes unmanageable.
  source_policy_documents = [data.aws_iam_policy_document.kms_services.json]

  statement {
    sid = "AccountAdministers"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions   = ["kms:*"]
    resources = ["*"]
  }
}

resource "aws_kms_key" "this" {
  count = var.create_kms_key ? 1 : 0

  description             = "${var.name}: CloudWatch Logs, ECR and EBS"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json

  tags = local.common_tags

  lifecycle {
    precondition {
      condition     = length(data.aws_iam_roles.autoscaling_service_linked[0].names) > 0
      error_message = "The Auto Scaling service-linked role AWSServiceRoleForAutoScaling does not exist yet in this account, and the key policy names it. Create it once: `aws iam create-service-linked-role --aws-service-name autoscaling.amazonaws.com`, then apply again."
    }
  }
}

resource "aws_kms_alias" "this" {
  count = var.create_kms_key ? 1 : 0

  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this[0].key_id
}
