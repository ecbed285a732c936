# Internet-facing ALB terminating TLS and speaking gRPC (HTTP/2) to the tasks.

resource "aws_security_group" "alb" {
  name_prefix = "${var.name}-alb-"
  description = "HWS ALB: HTTPS (and HTTP redirect) from allowed CIDRs"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-alb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  for_each = toset(var.allowed_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "gRPC over TLS from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "http_redirect" {
  #checkov:skip=CKV_AWS_260:Port 80 only answers with a 301 redirect to HTTPS (listener below); no content is served over HTTP.
  for_each = toset(var.allowed_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "HTTP (redirect to HTTPS only) from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "to_targets" {
  security_group_id = aws_security_group.alb.id
  description       = "gRPC and health checks to the tasks"
  ip_protocol       = "tcp"
  from_port         = var.target_port
  to_port           = var.target_port
  cidr_ipv4         = data.aws_vpc.this.cidr_block
}

data "aws_vpc" "this" {
  id = var.vpc_id
}

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_150:Deletion protection is a variable (enable_deletion_protection), off by default so terraform destroy works in one go.
  #checkov:skip=CKV_AWS_91:Access logging is optional (access_logs_bucket); enable it by giving a bucket.
  #checkov:skip=CKV2_AWS_28:No WAF by default: the ALB only carries gRPC streams of binary audio; attach a web ACL per deployment if required.
  #checkov:skip=CKV2_AWS_76:No WAF by default (see CKV2_AWS_28); the service is not Java and has no Log4j.
  name                       = "${var.name}-alb"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = var.idle_timeout_s
  client_keep_alive          = var.client_keep_alive_s
  enable_deletion_protection = var.enable_deletion_protection
  drop_invalid_header_fields = true
  enable_http2               = true
  desync_mitigation_mode     = "defensive"

  dynamic "access_logs" {
    for_each = var.access_logs_bucket == null ? [] : [var.access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = var.access_logs_prefix
      enabled = true
    }
  }

  tags = var.tags
}

# protocol_version GRPC replaces the target group on change: name_prefix + create_before_destroy.
resource "aws_lb_target_group" "grpc" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; targets are in private subnets and only the ALB security group can reach them. The server speaks plaintext gRPC (h2c).
  name_prefix      = "hws-"
  port             = var.target_port
  protocol         = "HTTP"
  protocol_version = "GRPC"
  target_type      = var.target_type
  vpc_id           = var.vpc_id
  # On a deploy, scale-in or instance drain ECS deregisters the target first: the ALB sends it
  # no new streams, keeps the open ones for this long, then closes them; only then does ECS
  # send SIGTERM. Meanwhile each open stream ends at its age (HWS_MAX_STREAM_AGE_S, at a pause)
  # and its client resumes on another target, so by the end nothing is left to cut.
  deregistration_delay = var.deregistration_delay_s
  # Every gRPC stream is one long HTTP/2 request: least_outstanding_requests sends a new
  # stream to the target with the fewest open ones (per ALB node), so a task that just came
  # up takes the new streams instead of a full one getting its round-robin share.
  load_balancing_algorithm_type = var.load_balancing_algorithm_type

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = var.health_check_path
    matcher             = var.health_check_grpc_codes
    interval            = var.health_check_interval_s
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_acm_certificate" "this" {
  domain_name       = var.domain_name
  validation_method = "DNS"

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = {
    for dvo in aws_acm_certificate.this.domain_validation_options : dvo.domain_name => {
      name   = dvo.resource_record_name
      record = dvo.resource_record_value
      type   = dvo.resource_record_type
    }
  }

  zone_id         = var.hosted_zone_id
  name            = each.value.name
  type            = each.value.type
  records         = [each.value.record]
  ttl             = 60
  allow_overwrite = true
}

# DNS validation succeeds only if the zone is the one the world sees: an undelegated zone
# (the registrar's NS records point elsewhere) makes it wait out the timeout (75 min by
# default), so it is shortened and the prerequisite is in docs/operations.md.
resource "aws_acm_certificate_validation" "this" {
  certificate_arn         = aws_acm_certificate.this.arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]

  timeouts {
    create = var.certificate_validation_timeout
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = aws_acm_certificate_validation.this.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.grpc.arn
  }

  tags = var.tags
}

resource "aws_lb_listener" "http_redirect" {
  #checkov:skip=CKV_AWS_2:This listener only redirects HTTP to HTTPS (301).
  #checkov:skip=CKV_AWS_103:No TLS on the redirect-only HTTP listener.
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }

  tags = var.tags
}

# Records that already answer for domain_name: a CNAME, or an A record that is not this
# ALB's alias, makes the alias below fail at the end of a long apply ("already exists").
data "aws_route53_records" "existing" {
  zone_id    = var.hosted_zone_id
  name_regex = "^${replace(lower(trimsuffix(var.domain_name, ".")), ".", "\\.")}\\.?$"
}

locals {
  conflicting_records = [
    for r in data.aws_route53_records.existing.resource_record_sets : "${r.type} ${r.name}"
    if r.type == "CNAME" || (r.type == "A" && !strcontains(lower(try(r.alias_target.dns_name, r.alias_target[0].dns_name, "")), lower(aws_lb.this.dns_name)))
  ]
}

resource "aws_route53_record" "alias" {
  zone_id = var.hosted_zone_id
  name    = var.domain_name
  type    = "A"

  lifecycle {
    precondition {
      condition     = length(local.conflicting_records) == 0
      error_message = "The hosted zone already has ${join(", ", local.conflicting_records)} for ${var.domain_name}: delete it (aws route53 change-resource-record-sets) or choose another domain_name. Terraform does not overwrite a record it did not create."
    }
  }

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}
