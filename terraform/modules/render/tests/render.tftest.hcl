# Offline tests of the rendering module: `terraform init && terraform test` in this folder.

variables {
  image          = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hws:1.0.0"
  aws_region     = "us-east-1"
  log_group_name = "/ecs/hws"
  cluster_name   = "hws"
}

run "defaults" {
  command = plan

  assert {
    condition     = output.container_definition.resourceRequirements[0].type == "GPU" && output.container_definition.resourceRequirements[0].value == "1"
    error_message = "The task must reserve one GPU."
  }

  assert {
    condition     = output.environment["HWS_GRACE_PERIOD_S"] == "30"
    error_message = "HWS_GRACE_PERIOD_S must be the grace period."
  }

  assert {
    condition     = output.stop_timeout_s > output.grace_period_s
    error_message = "stopTimeout must exceed the grace period."
  }

  assert {
    condition     = output.container_definition.stopTimeout == output.stop_timeout_s
    error_message = "The container stopTimeout must be the rendered stop timeout."
  }

  assert {
    condition     = output.deregistration_delay_s == 420
    error_message = "The ALB deregistration delay is its own setting (420 s by default), not derived from the grace period."
  }

  assert {
    condition     = output.environment["HWS_MAX_STREAM_AGE_S"] == "300" && output.environment["HWS_MAX_STREAM_AGE_OVERRUN_S"] == "60"
    error_message = "The server must end streams at their age (300 s, then hard after 60 s more)."
  }

  assert {
    condition     = output.deregistration_delay_s > output.max_stream_age_s + 60 && output.client_keep_alive_s > output.max_stream_age_s + 60
    error_message = "The deregistration delay and the client keep-alive must outlast a stream's age and overrun."
  }

  assert {
    condition     = output.environment["HWS_EMF_INTERVAL_S"] == "15" && output.environment["HWS_EMF_NAMESPACE"] == "HWS" && output.environment["HWS_EMF_SERVICE"] == "hws"
    error_message = "The task definition must turn the EMF load lines on, in the namespace and with the Service dimension the scaling policy reads."
  }

  assert {
    condition     = output.health_check_grace_period_s >= 60
    error_message = "The health check grace period must cover model load."
  }

  assert {
    condition     = output.ecs_agent_config["ECS_CLUSTER"] == "hws" && strcontains(output.user_data, "ECS_CLUSTER=hws")
    error_message = "User data must set ECS_CLUSTER."
  }

  assert {
    condition     = strcontains(output.user_data, "ECS_CONTAINER_STOP_TIMEOUT=40s")
    error_message = "The agent stop timeout must match the container stopTimeout."
  }

  assert {
    condition     = base64decode(output.user_data_base64) == output.user_data
    error_message = "user_data_base64 must encode user_data."
  }

  assert {
    condition     = !contains(keys(output.environment), "HWS_MODEL")
    error_message = "Without a model override the image's HWS_MODEL must be kept."
  }

  assert {
    condition     = output.container_definition.healthCheck.command[0] == "CMD-SHELL" && strcontains(output.container_definition.healthCheck.command[1], "hws-healthcheck --addr localhost:50051")
    error_message = "The container health check must call hws-healthcheck."
  }

  assert {
    condition     = jsondecode(output.container_definitions_json)[0].name == "hws"
    error_message = "container_definitions_json must be a JSON list with the container."
  }

  assert {
    condition     = output.container_definition.readonlyRootFilesystem == true && output.container_definition.user == "10001:10001"
    error_message = "The container must run non-root with a read-only root filesystem."
  }
}

run "model_override_and_long_grace" {
  command = plan

  variables {
    model                  = "/opt/models/large-v3"
    grace_period_s         = 100
    deregistration_delay_s = 900
    max_streams            = 8
    extra_environment = {
      HWS_GRACE_PERIOD_S = "1"
      EXTRA              = "x"
    }
  }

  assert {
    condition     = output.environment["HWS_MODEL"] == "/opt/models/large-v3"
    error_message = "The model override must reach HWS_MODEL."
  }

  assert {
    condition     = output.environment["HWS_GRACE_PERIOD_S"] == "100" && output.environment["EXTRA"] == "x"
    error_message = "extra_environment must not override HWS_GRACE_PERIOD_S."
  }

  assert {
    condition     = output.stop_timeout_s == 110 && output.deregistration_delay_s == 900
    error_message = "stopTimeout follows the grace period; the deregistration delay is set on its own."
  }

  assert {
    condition     = output.environment["HWS_MAX_STREAMS"] == "8"
    error_message = "HWS_MAX_STREAMS must follow max_streams."
  }
}

run "grace_period_above_limit_is_rejected" {
  command = plan

  variables {
    grace_period_s = 601
  }

  expect_failures = [var.grace_period_s]
}

run "deregistration_delay_above_alb_maximum_is_rejected" {
  command = plan

  variables {
    deregistration_delay_s = 3601
  }

  expect_failures = [var.deregistration_delay_s]
}

run "deregistration_delay_shorter_than_a_stream_is_rejected" {
  command = plan

  variables {
    max_stream_age_s = 600
  }

  expect_failures = [var.deregistration_delay_s]
}

run "deregistration_delay_without_margin_for_the_overrun_is_rejected" {
  command = plan

  variables {
    deregistration_delay_s   = 380
    max_stream_age_overrun_s = 60
  }

  expect_failures = [var.deregistration_delay_s]
}

run "client_keep_alive_shorter_than_a_stream_is_rejected" {
  command = plan

  variables {
    client_keep_alive_s = 300
  }

  expect_failures = [var.client_keep_alive_s]
}

run "without_the_age_limit_any_delay_is_accepted" {
  command = plan

  variables {
    max_stream_age_s       = 0
    deregistration_delay_s = 60
    client_keep_alive_s    = 120
  }

  assert {
    condition     = output.environment["HWS_MAX_STREAM_AGE_S"] == "0" && output.deregistration_delay_s == 60
    error_message = "max_stream_age_s = 0 turns the age limit off and lifts its bound on the delay."
  }
}

run "zero_gpus_is_rejected" {
  command = plan

  variables {
    gpu_count = 0
  }

  expect_failures = [var.gpu_count]
}

run "short_model_load_budget_is_rejected" {
  command = plan

  variables {
    model_load_budget_s = 5
  }

  expect_failures = [var.model_load_budget_s]
}

run "no_api_keys_by_default" {
  command = plan

  assert {
    condition     = length(output.container_definition.secrets) == 0
    error_message = "Without a secret the container gets no HWS_API_KEYS."
  }
}

run "api_keys_from_secrets_manager" {
  command = plan

  variables {
    api_keys_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hws-api-keys-AbCdEf"
  }

  assert {
    condition     = output.container_definition.secrets[0].name == "HWS_API_KEYS" && output.container_definition.secrets[0].valueFrom == "arn:aws:secretsmanager:us-east-1:123456789012:secret:hws-api-keys-AbCdEf"
    error_message = "The API keys secret must reach the container as HWS_API_KEYS."
  }
}

run "stream_age_limit_is_explicit_in_the_task_definition" {
  command = plan

  # The server's own default is 0 (off): the task definition must carry 300 whatever it is.
  assert {
    condition     = one([for e in output.container_definition.environment : e.value if e.name == "HWS_MAX_STREAM_AGE_S"]) == "300"
    error_message = "HWS_MAX_STREAM_AGE_S=300 must be in the container environment, not left to the server's default."
  }
}

run "image_pinned_by_digest_is_accepted" {
  command = plan

  variables {
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hws@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }

  assert {
    condition     = output.container_definition.image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/hws@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    error_message = "An image pinned by digest must reach the container definition unchanged."
  }
}

run "image_latest_is_rejected" {
  command = plan

  variables {
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hws:latest"
  }

  expect_failures = [var.image]
}

run "image_without_tag_or_digest_is_rejected" {
  command = plan

  variables {
    image = "registry.example.com:5000/hws"
  }

  expect_failures = [var.image]
}

run "image_with_short_digest_is_rejected" {
  command = plan

  variables {
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hws@sha256:0123"
  }

  expect_failures = [var.image]
}
