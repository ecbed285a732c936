# Hosted Whisper Streaming on ECS (EC2 GPU capacity) behind an HTTPS/gRPC ALB.
#
# Apply order on a fresh account: `terraform apply -target=module.ecr`, push the image,
# then `terraform apply` (docs/operations.md).

data "aws_route53_zone" "this" {
  name         = var.hosted_zone_name
  private_zone = false
}

locals {
  cluster_name   = var.name
  log_group_name = "/ecs/${var.name}"
  # By digest where one is given (nothing can move it), else by the immutable tag.
  image = (var.image != null ? var.image :
    var.image_digest != null ? "${module.ecr.repository_url}@${var.image_digest}" :
  "${module.ecr.repository_url}:${var.image_tag}")
  common_tags = merge({ Project = "hosted-whisper-streaming", ManagedBy = "terraform" }, var.tags)
  kms_key_arn = var.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn
}

module "ecr" {
  source = "./modules/ecr"

  name         = var.name
  kms_key_arn  = local.kms_key_arn
  force_delete = var.ecr_force_delete
}

module "network" {
  source = "./modules/network"

  name                     = var.name
  az_count                 = var.az_count
  availability_zones       = var.availability_zones
  single_nat_gateway       = var.single_nat_gateway
  egress_mode              = var.egress_mode
  secrets_manager_endpoint = var.api_keys_secret_arn != null
  kms_key_arn              = local.kms_key_arn
}

# Provider-free: container definition, user data and the timings of a stream's life
# (stream age, deregistration delay, client keep-alive, stopTimeout, health check grace) in
# one place, where their relations are validated.
module "render" {
  source = "./modules/render"

  api_keys_secret_arn = var.api_keys_secret_arn

  name                     = var.name
  image                    = local.image
  model                    = var.model
  device                   = "cuda"
  compute_type             = var.compute_type
  max_streams              = var.max_streams
  grace_period_s           = var.grace_period_s
  deregistration_delay_s   = var.deregistration_delay_s
  client_keep_alive_s      = var.client_keep_alive_s
  max_stream_age_s         = var.max_stream_age_s
  max_stream_age_overrun_s = var.max_stream_age_overrun_s
  emf_interval_s           = var.emf_interval_s
  metrics_scraped          = length(var.metrics_allowed_cidrs) > 0
  model_load_budget_s      = var.model_load_budget_s
  aws_region               = var.region
  log_group_name           = local.log_group_name
  cluster_name             = local.cluster_name
}

module "gpu_cluster" {
  source = "./modules/gpu_cluster"

  name               = var.name
  cluster_name       = local.cluster_name
  vpc_id             = module.network.vpc_id
  private_subnet_ids = module.network.private_subnet_ids
  instance_type      = var.instance_type
  ami_id             = var.ami_id
  user_data_base64   = module.render.user_data_base64
  ebs_kms_key_arn    = local.kms_key_arn
  availability_zones = module.network.availability_zones
  check_gpu_quota    = var.check_gpu_quota
  min_size           = var.min_tasks
  # Below 100: idle GPU instances kept as a warm spare (docs/operations.md, Scale).
  managed_scaling_target_capacity = var.managed_scaling_target_capacity
  # One task per GPU instance, plus one spare for a rolling deployment (maximum 200%).
  max_size = var.max_tasks + 1
  # default_tags do not reach instances and volumes the ASG launches: tag them explicitly.
  tags = local.common_tags
}

module "alb" {
  source = "./modules/alb"

  name                       = var.name
  vpc_id                     = module.network.vpc_id
  public_subnet_ids          = module.network.public_subnet_ids
  domain_name                = var.domain_name
  hosted_zone_id             = data.aws_route53_zone.this.zone_id
  allowed_cidrs              = var.allowed_cidrs
  target_port                = module.render.grpc_port
  target_type                = "ip"
  idle_timeout_s             = 3600
  client_keep_alive_s        = module.render.client_keep_alive_s
  deregistration_delay_s     = module.render.deregistration_delay_s
  enable_deletion_protection = var.enable_deletion_protection
  access_logs_bucket         = var.alb_access_logs_bucket

  load_balancing_algorithm_type = var.load_balancing_algorithm_type
}

module "service" {
  source = "./modules/service"

  api_keys_secret_arn         = var.api_keys_secret_arn
  api_keys_secret_kms_key_arn = var.api_keys_secret_kms_key_arn

  name                        = var.name
  cluster_arn                 = module.gpu_cluster.cluster_arn
  cluster_name                = module.gpu_cluster.cluster_name
  capacity_provider_name      = module.gpu_cluster.capacity_provider_name
  vpc_id                      = module.network.vpc_id
  private_subnet_ids          = module.network.private_subnet_ids
  alb_security_group_id       = module.alb.security_group_id
  target_group_arn            = module.alb.target_group_arn
  alb_arn_suffix              = module.alb.alb_arn_suffix
  target_group_arn_suffix     = module.alb.target_group_arn_suffix
  container_definitions_json  = module.render.container_definitions_json
  container_name              = module.render.container_name
  grpc_port                   = module.render.grpc_port
  metrics_port                = module.render.metrics_port
  metrics_allowed_cidrs       = var.metrics_allowed_cidrs
  health_check_grace_period_s = module.render.health_check_grace_period_s
  log_group_name              = local.log_group_name
  log_retention_days          = var.log_retention_days
  log_kms_key_arn             = local.kms_key_arn
  ecr_repository_arn          = module.ecr.repository_arn
  desired_count               = var.min_tasks
  min_count                   = var.min_tasks
  max_count                   = var.max_tasks
  requests_per_target         = var.requests_per_target
  stream_utilization_target   = var.stream_utilization_target
  metrics_namespace           = module.render.emf_namespace
  metrics_service             = module.render.emf_service

  # apply fails when a rollout does not complete; ECS rolls back on the deployment alarms.
  wait_for_steady_state      = var.wait_for_steady_state
  deployment_timeout_minutes = var.deployment_timeout_minutes
  deployment_alarm_names     = module.alarms.deployment_alarm_names

  # Create and destroy order comes from the values above, not from a module-level depends_on
  # (which would make every data source inside "known after apply" whenever, say, the AMI
  # changes): capacity_provider_name depends on the cluster's capacity-provider association,
  # private_subnet_ids on the NAT routes and VPC endpoints, target_group_arn on the listener.
}

# The alarms exist before the service, which names some of them as deployment alarms: the
# ServiceName dimension is the service's name (var.name), not module.service's output.
module "alarms" {
  source = "./modules/alarms"

  name                      = var.name
  alb_arn_suffix            = module.alb.alb_arn_suffix
  target_group_arn_suffix   = module.alb.target_group_arn_suffix
  cluster_name              = module.gpu_cluster.cluster_name
  service_name              = var.name
  metrics_namespace         = module.render.emf_namespace
  metrics_service           = module.render.emf_service
  emf_enabled               = var.emf_interval_s > 0
  alarm_topic_arn           = var.alarm_topic_arn
  alarm_email_addresses     = var.alarm_email_addresses
  kms_key_arn               = local.kms_key_arn
  stream_utilization_alarm  = var.stream_utilization_alarm
  final_latency_p95_alarm_s = var.final_latency_p95_alarm_s
}
