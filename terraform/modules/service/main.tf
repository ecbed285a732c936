# ECS service for the HWS server on the GPU capacity provider.

data "aws_caller_identity" "current" {}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:KMS is optional (log_kms_key_arn); CloudWatch Logs encrypts at rest by default.
  #checkov:skip=CKV_AWS_338:Application logs are kept 30 days by default (log_retention_days) to limit cost; raise it if policy needs a year.
  name              = var.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn

  tags = var.tags
}

# ---------------------------------------------------------------- IAM
data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# Execution role (used by the ECS agent): pull from our repository, write our log group.
resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-exec-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid = "EcrAuth"
    # GetAuthorizationToken does not support resource-level permissions.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "EcrPull"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.ecr_repository_arn]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  # ECS reads the API keys secret at task start and hands it to the container as HWS_API_KEYS.
  dynamic "statement" {
    for_each = var.api_keys_secret_arn == null ? [] : [var.api_keys_secret_arn]
    content {
      sid       = "ApiKeysSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  # A secret encrypted with a customer-managed key: GetSecretValue also needs kms:Decrypt on that key.
  dynamic "statement" {
    for_each = var.api_keys_secret_kms_key_arn == null ? [] : [var.api_keys_secret_kms_key_arn]
    content {
      sid       = "ApiKeysSecretKey"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-and-log"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# Task role (used by the server process): the server calls no AWS API, so no permissions.
resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-task-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

# ---------------------------------------------------------------- network
resource "aws_security_group" "task" {
  name_prefix = "${var.name}-task-"
  description = "HWS tasks: gRPC only from the ALB"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-task" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "grpc_from_alb" {
  security_group_id            = aws_security_group.task.id
  description                  = "gRPC and health checks from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = var.grpc_port
  to_port                      = var.grpc_port
  referenced_security_group_id = var.alb_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "metrics" {
  for_each = toset(var.metrics_allowed_cidrs)

  security_group_id = aws_security_group.task.id
  description       = "Prometheus scrape from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = var.metrics_port
  to_port           = var.metrics_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.task.id
  description       = "HTTPS: model downloads from Hugging Face (when not baked), AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# ---------------------------------------------------------------- task + service
resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["EC2"]
  network_mode             = "awsvpc"
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = var.container_definitions_json

  # Per-instance model cache shared by successive tasks on the same host
  # (only used when the model is downloaded at runtime instead of baked).
  volume {
    name = "model-cache"

    docker_volume_configuration {
      scope         = "shared"
      autoprovision = true
      driver        = "local"
    }
  }

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name                              = var.name
  cluster                           = var.cluster_arn
  task_definition                   = aws_ecs_task_definition.this.arn
  desired_count                     = var.desired_count
  health_check_grace_period_seconds = var.health_check_grace_period_s
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"
  enable_execute_command            = false

  # `terraform apply` waits for the rollout and fails when it does not finish: a deployment
  # that ECS stops or cannot roll back is an error of the wait; one whose tasks cannot be
  # placed (no GPU quota, no capacity: never a circuit-breaker failure) runs into the
  # timeouts below; one the circuit breaker or an alarm rolled back reaches a steady state
  # on the old task definition, which the postcondition below turns into an error.
  wait_for_steady_state = var.wait_for_steady_state

  # Rolling update: start the new task (needs a free GPU: managed scaling adds an
  # instance) before stopping the old one, which then drains its streams.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # Deployment alarms (ALB 5xx, target connection errors by default): ECS watches them during
  # the rollout and its bake time and rolls back when one goes to ALARM.
  dynamic "alarms" {
    for_each = length(var.deployment_alarm_names) > 0 ? [var.deployment_alarm_names] : []
    content {
      alarm_names = alarms.value
      enable      = true
      rollback    = true
    }
  }

  capacity_provider_strategy {
    capacity_provider = var.capacity_provider_name
    weight            = 1
    base              = 0
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.task.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = var.target_group_arn
    container_name   = var.container_name
    container_port   = var.grpc_port
  }

  ordered_placement_strategy {
    type  = "spread"
    field = "attribute:ecs.availability-zone"
  }

  tags = var.tags

  # A rollout needs a new GPU instance (about 5 min), the model load (up to
  # health_check_grace_period_s), the old task's deregistration delay and the alarms' bake
  # time: deployment_timeout_minutes (45) bounds it, and apply fails when it runs out.
  timeouts {
    create = "${var.deployment_timeout_minutes}m"
    update = "${var.deployment_timeout_minutes}m"
    delete = "30m"
  }

  lifecycle {
    # Service autoscaling owns desired_count after creation.
    ignore_changes = [desired_count]

    # A rollback also ends in a steady state, which the wait reports as success
    # (hashicorp/terraform-provider-aws#20858): the service then runs the previous task
    # definition, and this makes apply fail.
    postcondition {
      condition     = !var.wait_for_steady_state || self.task_definition == aws_ecs_task_definition.this.arn
      error_message = "The deployment of ${aws_ecs_task_definition.this.arn} was rolled back (circuit breaker or deployment alarm): the service runs ${self.task_definition}. See `aws ecs describe-services --cluster ${var.cluster_name} --services ${var.name}` (events) and the stopped tasks' reasons."
    }
  }

  depends_on = [aws_iam_role_policy.execution]
}

# ---------------------------------------------------------------- autoscaling
resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.this.name}"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

# Scale on stream load: each task publishes StreamUtilization (open streams / HWS_MAX_STREAMS)
# as CloudWatch Embedded Metric Format lines on stdout, which the awslogs driver ships; the
# average over the service's tasks is kept near stream_utilization_target. A stream is one
# long request and the GPU, not the CPU, is the bottleneck, so neither CPU nor request count
# tells how full a task is.
resource "aws_appautoscaling_policy" "streams" {
  name               = "${var.name}-stream-utilization"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.stream_utilization_target
    scale_in_cooldown  = var.scale_in_cooldown_s
    scale_out_cooldown = var.scale_out_cooldown_s

    customized_metric_specification {
      metric_name = "StreamUtilization"
      namespace   = var.metrics_namespace
      statistic   = "Average"

      dimensions {
        name  = "Service"
        value = var.metrics_service
      }
    }
  }
}

resource "aws_appautoscaling_policy" "cpu" {
  count = var.cpu_target_percent == null ? 0 : 1

  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = var.scale_in_cooldown_s
    scale_out_cooldown = var.scale_out_cooldown_s

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  count = var.requests_per_target == null ? 0 : 1

  name               = "${var.name}-alb-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_in_cooldown  = var.scale_in_cooldown_s
    scale_out_cooldown = var.scale_out_cooldown_s

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${var.alb_arn_suffix}/${var.target_group_arn_suffix}"
    }
  }
}
