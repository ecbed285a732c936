# Pure rendering: the ECS container definition and the instance user data.
# No resources, no data sources, no providers.

# ECS order when a task behind the ALB stops (deploy, scale-in, instance drain): deregister
# the target (no new streams), wait out the deregistration delay, then SIGTERM; the server
# drains for HWS_GRACE_PERIOD_S and SIGKILL follows stopTimeout (grace + margin) after SIGTERM.
# During the delay each open stream ends at its first pause after HWS_MAX_STREAM_AGE_S (at the
# latest after the overrun) and its client resumes on another task; the delay is validated to
# outlast that, so the ALB's cut at its end finds nothing left.
locals {
  stop_timeout_s = var.grace_period_s + var.stop_margin_s

  environment_map = merge(
    var.extra_environment,
    {
      HWS_HOST         = "0.0.0.0"
      HWS_PORT         = tostring(var.grpc_port)
      HWS_METRICS_PORT = tostring(var.metrics_port)
      # /metrics has no authentication: on loopback unless a scraper is let in (metrics_allowed_cidrs).
      HWS_METRICS_HOST   = var.metrics_scraped ? "0.0.0.0" : "127.0.0.1"
      HWS_DEVICE         = var.device
      HWS_COMPUTE_TYPE   = var.compute_type
      HWS_LOG_FORMAT     = "json"
      HWS_LOG_LEVEL      = var.log_level
      HWS_MAX_STREAMS    = tostring(var.max_streams)
      HWS_GRACE_PERIOD_S = tostring(var.grace_period_s)
      # Set here explicitly, never left to the server's default (which is 0, off, for `make run`
      # and compose): behind the ALB a deregistered task keeps its open streams only for the
      # deregistration delay, then the ALB cuts them and ECS sends SIGTERM. With the age limit
      # (300 s + 60 s overrun) every stream ends at a pause and resumes on another task within
      # the delay (420 s >= age + overrun + 30, validated in variables.tf), so a deploy or a
      # scale-in cuts none; without it, every stream longer than the delay is cut.
      HWS_MAX_STREAM_AGE_S         = tostring(var.max_stream_age_s)
      HWS_MAX_STREAM_AGE_OVERRUN_S = tostring(var.max_stream_age_overrun_s)
      HWS_MODEL_CACHE_DIR          = "/var/cache/hws/models"
      # A model downloaded at start is retried while health says NOT_SERVING, not fatal: a hub that
      # is down for a minute would otherwise cycle tasks and count against the circuit breaker.
      HWS_MODEL_LOAD_WAIT = "true"
      # Load as CloudWatch Embedded Metric Format lines on stdout (scaling and alarms).
      HWS_EMF_INTERVAL_S = tostring(var.emf_interval_s)
      HWS_EMF_NAMESPACE  = var.emf_namespace
      HWS_EMF_SERVICE    = var.name
    },
    var.model == null ? {} : { HWS_MODEL = var.model },
  )

  container_definition = {
    name      = var.name
    image     = var.image
    essential = true
    user      = "10001:10001"

    portMappings = [
      { name = "grpc", containerPort = var.grpc_port, protocol = "tcp", appProtocol = "grpc" },
      { name = "metrics", containerPort = var.metrics_port, protocol = "tcp", appProtocol = "http" },
    ]

    environment = [for k in sort(keys(local.environment_map)) : { name = k, value = local.environment_map[k] }]

    # API keys from Secrets Manager (the secret's value: keys separated by commas); unset: no authentication.
    secrets = var.api_keys_secret_arn == null ? [] : [{ name = "HWS_API_KEYS", valueFrom = var.api_keys_secret_arn }]

    # The GPU requirement is what makes the ECS agent start the container with the NVIDIA runtime.
    resourceRequirements = [{ type = "GPU", value = tostring(var.gpu_count) }]

    cpu               = var.cpu
    memoryReservation = var.memory_reservation_mib

    # SIGTERM -> server drains for HWS_GRACE_PERIOD_S -> exits; SIGKILL only after stopTimeout.
    stopTimeout = local.stop_timeout_s

    readonlyRootFilesystem = true
    mountPoints = [
      { sourceVolume = "model-cache", containerPath = "/var/cache/hws", readOnly = false },
    ]
    linuxParameters = {
      initProcessEnabled = true
      tmpfs              = [{ containerPath = "/tmp", size = 1024, mountOptions = ["noexec", "nosuid"] }]
    }
    ulimits = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]

    healthCheck = {
      command     = ["CMD-SHELL", "hws-healthcheck --addr localhost:${var.grpc_port} --timeout 3 || exit 1"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 300
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = var.log_group_name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = var.name
        mode                  = "non-blocking"
        max-buffer-size       = "25m"
      }
    }
  }

  ecs_agent_config = merge(
    {
      ECS_ENABLE_GPU_SUPPORT                = "true"
      ECS_CONTAINER_STOP_TIMEOUT            = "${local.stop_timeout_s}s"
      ECS_AWSVPC_BLOCK_IMDS                 = "true"
      ECS_IMAGE_PULL_BEHAVIOR               = "prefer-cached"
      ECS_ENABLE_CONTAINER_METADATA         = "true"
      ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION = "15m"
    },
    var.extra_ecs_agent_config,
    { ECS_CLUSTER = var.cluster_name },
  )

  user_data = join("\n", concat(
    ["#!/bin/bash", "set -euo pipefail", "cat >> /etc/ecs/ecs.config <<'ECSCONFIG'"],
    [for k in sort(keys(local.ecs_agent_config)) : "${k}=${local.ecs_agent_config[k]}"],
    ["ECSCONFIG", ""],
  ))
}
