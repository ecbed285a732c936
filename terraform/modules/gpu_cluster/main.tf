# ECS cluster on GPU EC2 instances: cluster, launch template, ASG, capacity provider.
#
# Scale-in never picks a busy GPU instance: managed termination protection is ENABLED on the
# capacity provider, and the ASG has protect_from_scale_in = true (which ECS requires for it).
# ECS then keeps scale-in protection on every instance that runs a task and lifts it only
# from idle ones, so a scale-in of the ASG (managed scaling lowering desired capacity) can
# only terminate an instance with no task; managed draining covers the rest (instance
# refresh, Spot/health replacement): the instance's tasks are drained before it goes.
#
# Destroy: the protection does not block `terraform destroy`. The service (and with it every
# task) is destroyed first: it uses the capacity_provider_name output, which depends on the
# cluster association. The capacity provider then goes, and the ASG has force_delete = true:
# the provider then skips its drain step (set sizes to 0 and wait for the instances to
# terminate, which protected instances never do) and calls DeleteAutoScalingGroup with
# ForceDelete, which terminates the instances whatever their scale-in protection. Without
# force_delete a destroy would hang here until the delete timeout.

data "aws_ssm_parameter" "gpu_ami" {
  count = var.ami_id == null ? 1 : 0

  name = var.ami_ssm_parameter
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.gpu_ami[0].value)
}

resource "aws_ecs_cluster" "this" {
  #checkov:skip=CKV_AWS_224:ECS Exec is not enabled on the service, so there is no exec session log to encrypt.
  name = var.cluster_name

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }

  tags = var.tags
}

# Instance role: ECS agent + SSM Session Manager (no SSH, no key pair).
data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name_prefix        = "${var.name}-ecs-instance-"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "ecs_for_ec2" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "instance" {
  name_prefix = "${var.name}-ecs-instance-"
  role        = aws_iam_role.instance.name

  tags = var.tags
}

# Instances take no inbound traffic: tasks run in awsvpc mode with their own ENI and SG.
resource "aws_security_group" "instance" {
  name_prefix = "${var.name}-ecs-instance-"
  description = "ECS GPU container instances (no inbound)"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-ecs-instance" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "instance_https" {
  security_group_id = aws_security_group.instance.id
  description       = "HTTPS to ECS, ECR, CloudWatch, SSM and package repositories"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_launch_template" "this" {
  name_prefix            = "${var.name}-gpu-"
  description            = "ECS-optimised AL2023 GPU instances for ${var.cluster_name}"
  image_id               = local.ami_id
  instance_type          = var.instance_type
  user_data              = var.user_data_base64
  vpc_security_group_ids = [aws_security_group.instance.id]
  update_default_version = true
  ebs_optimized          = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  # IMDSv2 only. Hop limit 1: tasks run in awsvpc mode with IMDS blocked
  # (ECS_AWSVPC_BLOCK_IMDS=true); they get credentials from the task role endpoint.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.root_volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-gpu" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-gpu" })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "this" {
  name_prefix         = "${var.name}-gpu-"
  vpc_zone_identifier = var.private_subnet_ids
  min_size            = var.min_size
  max_size            = var.max_size
  health_check_type   = "EC2"

  # Required by managed_termination_protection = "ENABLED": new instances start protected
  # and ECS lifts the protection from instances without tasks. force_delete: destroy
  # deletes the group (and terminates its instances) without waiting for them, which
  # scale-in protected instances would never let happen (see the top of this file).
  protect_from_scale_in = true
  force_delete          = true

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  # Required for ECS managed scaling.
  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }

  dynamic "tag" {
    for_each = var.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # A new launch template version (a new AMI from SSM, new user data) replaces the fleet
  # instead of leaving old instances on the old AMI: launch first, then terminate; ECS
  # managed draining moves each instance's tasks before the ASG terminates it.
  dynamic "instance_refresh" {
    for_each = var.instance_refresh ? [1] : []
    content {
      strategy = "Rolling"

      preferences {
        min_healthy_percentage = 100
        max_healthy_percentage = 200
        instance_warmup        = tostring(var.instance_warmup_period_s)
        skip_matching          = true
      }
    }
  }

  lifecycle {
    # ECS managed scaling owns desired_capacity.
    ignore_changes = [desired_capacity]
  }

  # Instances register with ECS_CLUSTER at boot: the cluster must exist first (and is
  # destroyed after the instances).
  depends_on = [aws_ecs_cluster.this]
}

resource "aws_ecs_capacity_provider" "this" {
  name = "${var.name}-gpu"

  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.this.arn
    managed_termination_protection = "ENABLED"
    managed_draining               = "ENABLED"

    # target_capacity < 100 keeps idle GPU instances as a warm spare (variables.tf).
    managed_scaling {
      status                    = "ENABLED"
      target_capacity           = var.managed_scaling_target_capacity
      minimum_scaling_step_size = 1
      maximum_scaling_step_size = 2
      instance_warmup_period    = var.instance_warmup_period_s
    }
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = [aws_ecs_capacity_provider.this.name]

  default_capacity_provider_strategy {
    capacity_provider = aws_ecs_capacity_provider.this.name
    weight            = 1
    base              = 0
  }
}

# ---------------------------------------------------------------- first-apply checks
# The instance type must be offered in every zone the subnets are in: otherwise the ASG
# launches nothing in that zone and tasks placed there stay PROVISIONING while apply succeeds.
data "aws_ec2_instance_type_offerings" "gpu" {
  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [var.instance_type]
  }

  lifecycle {
    postcondition {
      condition     = length(setsubtract(var.availability_zones, self.locations)) == 0
      error_message = "${var.instance_type} is not offered in ${join(", ", setsubtract(var.availability_zones, self.locations))}. It is offered in ${join(", ", sort(self.locations))}: set availability_zones to two of those (or choose another instance_type)."
    }
  }
}

# GPU quota: without enough "Running On-Demand G and VT instances" vCPUs the ASG cannot
# launch, apply succeeds and tasks sit PROVISIONING. The quota counts vCPUs of every G/VT
# instance in the region, so instances already running elsewhere use some of it too.
locals {
  vcpus_per_size = { "xlarge" = 4, "2xlarge" = 8, "4xlarge" = 16, "8xlarge" = 32, "12xlarge" = 48, "16xlarge" = 64 }
  instance_vcpus = lookup(local.vcpus_per_size, split(".", var.instance_type)[1], 4)
  quota_vcpus    = var.max_size * local.instance_vcpus
  # P instances have a quota of their own.
  gpu_quota_code = can(regex("^p", var.instance_type)) ? "L-417A185B" : "L-DB2E81BA"
}

data "aws_servicequotas_service_quota" "gpu" {
  count = var.check_gpu_quota ? 1 : 0

  service_code = "ec2"
  quota_code   = local.gpu_quota_code

  lifecycle {
    postcondition {
      condition     = self.value >= local.quota_vcpus
      error_message = "The EC2 quota \"${self.quota_name}\" (${local.gpu_quota_code}) is ${self.value} vCPUs; ${var.max_size} x ${var.instance_type} (max_tasks + 1 for a rolling deploy) need ${local.quota_vcpus}. Request an increase in the Service Quotas console (it can take a day), lower max_tasks, or set check_gpu_quota = false to skip this check."
    }
  }
}
