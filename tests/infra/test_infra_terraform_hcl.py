"""Assertions on the Terraform sources, parsed with python-hcl2 (no providers needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "terraform"
MODULES = ["network", "gpu_cluster", "service", "alb", "ecr", "render", "alarms"]
MODULE_FILES = ["main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"]


def one(blocks: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """hcl2 returns nested blocks as lists; most of ours appear once."""
    if isinstance(blocks, list):
        assert len(blocks) == 1, blocks
        return blocks[0]
    return blocks


def var_default(tf: Any, module: str, ref: str) -> Any:
    match = re.fullmatch(r"\$\{var\.(\w+)\}", str(ref))
    assert match, f"expected a plain var reference, got {ref!r}"
    return tf.variables(f"modules/{module}")[match.group(1)]["default"]


@pytest.mark.parametrize("module", MODULES)
def test_module_has_standard_files(module: str) -> None:
    missing = [f for f in MODULE_FILES if not (TERRAFORM_DIR / "modules" / module / f).is_file()]
    assert not missing, f"modules/{module} lacks {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_module_readme_lists_inputs_and_outputs(tf: Any, module: str) -> None:
    readme = (TERRAFORM_DIR / "modules" / module / "README.md").read_text(encoding="utf-8")
    names = list(tf.variables(f"modules/{module}")) + list(tf.outputs(f"modules/{module}"))
    undocumented = [n for n in names if f"`{n}`" not in readme]
    assert not undocumented, f"modules/{module}/README.md does not mention {undocumented}"


def test_root_has_standard_files() -> None:
    for name in ["main.tf", "variables.tf", "outputs.tf", "versions.tf", "terraform.tfvars.example"]:
        assert (TERRAFORM_DIR / name).is_file(), name


def test_every_variable_has_description_and_type(tf: Any) -> None:
    directories = [""] + [f"modules/{m}" for m in MODULES]
    problems = [
        f"{d or '.'}: var.{name}"
        for d in directories
        for name, body in tf.variables(d).items()
        if not body.get("description") or "type" not in body
    ]
    assert not problems, f"variables without description or type: {problems}"


def test_every_output_has_description(tf: Any) -> None:
    directories = [""] + [f"modules/{m}" for m in MODULES]
    problems = [f"{d or '.'}: {n}" for d in directories for n, b in tf.outputs(d).items() if not b.get("description")]
    assert not problems


def test_no_registry_modules(tf: Any) -> None:
    for directory in [""] + [f"modules/{m}" for m in MODULES]:
        for name, body in tf.modules(directory).items():
            assert str(body["source"]).startswith("./") or str(body["source"]).startswith("../"), (
                f"module {name} in {directory or '.'} uses a non-local source {body['source']}"
            )


def test_render_module_is_provider_free(tf: Any) -> None:
    assert not tf.resources("modules/render")
    assert not tf.data("modules/render")
    versions = tf.parsed["modules/render/versions.tf"]
    assert "required_providers" not in str(versions)
    assert "provider" not in tf.parsed["modules/render/main.tf"]


def test_target_group_is_grpc_with_ready_health_check(tf: Any) -> None:
    tg = tf.resources("modules/alb")["aws_lb_target_group.grpc"]
    assert tg["protocol_version"] == "GRPC"
    assert tg["protocol"] == "HTTP"
    assert "name_prefix" in tg and "name" not in tg, "protocol_version changes replace the TG: use name_prefix"
    assert one(tg["lifecycle"])["create_before_destroy"] is True
    health = one(tg["health_check"])
    assert var_default(tf, "alb", health["path"]) == "/hws.transcriber.v1.Transcriber/Ready"
    assert var_default(tf, "alb", health["matcher"]) == "0"
    # awsvpc tasks register by IP.
    root_alb = tf.modules("")["alb"]
    assert root_alb["target_type"] == "ip"
    assert "awsvpc" in str(tf.resources("modules/service")["aws_ecs_task_definition.this"]["network_mode"])


def test_https_listener_tls12_and_http_redirect(tf: Any) -> None:
    res = tf.resources("modules/alb")
    https = res["aws_lb_listener.https"]
    assert https["protocol"] == "HTTPS" and https["port"] == 443
    policy = var_default(tf, "alb", https["ssl_policy"])
    assert policy.startswith("ELBSecurityPolicy-TLS13-1-2")
    assert "aws_acm_certificate_validation" in https["certificate_arn"]
    redirect = one(one(res["aws_lb_listener.http_redirect"]["default_action"])["redirect"])
    assert redirect["protocol"] == "HTTPS" and redirect["status_code"] == "HTTP_301"
    assert res["aws_acm_certificate.this"]["validation_method"] == "DNS"
    assert "aws_route53_record.alias" in res


def test_alb_idle_timeout_raised_and_destroyable(tf: Any) -> None:
    lb = tf.resources("modules/alb")["aws_lb.this"]
    assert lb["drop_invalid_header_fields"] is True
    assert var_default(tf, "alb", lb["enable_deletion_protection"]) is False
    default_idle = var_default(tf, "alb", lb["idle_timeout"])
    root_idle = tf.modules("")["alb"]["idle_timeout_s"]
    for value in (default_idle, root_idle):
        assert 300 <= int(value) <= 4000, "idle timeout must be raised well above 60 s (max 4000)"


def test_deregistration_delay_is_its_own_setting_and_reaches_the_alb(tf: Any) -> None:
    # ECS deregisters first and sends SIGTERM only after the delay: the delay, not the grace
    # period, is what open streams get, so it is a setting of its own, not grace + margin.
    root_vars = tf.variables("")
    assert int(root_vars["deregistration_delay_s"]["default"]) >= 300
    assert "3600" in str(root_vars["deregistration_delay_s"]["validation"])
    assert tf.modules("")["render"]["deregistration_delay_s"] == "${var.deregistration_delay_s}"
    assert tf.modules("")["alb"]["deregistration_delay_s"] == "${module.render.deregistration_delay_s}"
    assert tf.resources("modules/alb")["aws_lb_target_group.grpc"]["deregistration_delay"] == (
        "${var.deregistration_delay_s}"
    )
    assert "deregistration_delay_s" not in str(tf.parsed["modules/render/main.tf"]["locals"])
    # The 120 s stopTimeout cap is Fargate's: no EC2 task here is limited to it.
    assert int(tf.variables("modules/render")["grace_period_s"]["default"]) < int(
        root_vars["deregistration_delay_s"]["default"]
    )


def test_client_keep_alive_is_set(tf: Any) -> None:
    lb = tf.resources("modules/alb")["aws_lb.this"]
    assert lb["client_keep_alive"] == "${var.client_keep_alive_s}"
    # Through the render module, where it is validated against the stream age.
    assert tf.modules("")["render"]["client_keep_alive_s"] == "${var.client_keep_alive_s}"
    assert tf.modules("")["alb"]["client_keep_alive_s"] == "${module.render.client_keep_alive_s}"
    assert int(tf.variables("")["client_keep_alive_s"]["default"]) >= 3600


def test_streams_end_at_their_age_before_the_deregistration_delay_ends(tf: Any) -> None:
    # The server ends each stream at its age (resumed elsewhere by the client), and the render module
    # refuses a deregistration delay or client keep-alive that a stream could outlive.
    root_vars, render = tf.variables(""), tf.modules("")["render"]
    for name in ("max_stream_age_s", "max_stream_age_overrun_s", "deregistration_delay_s", "client_keep_alive_s"):
        assert render[name] == "${var." + name + "}"
    age = int(root_vars["max_stream_age_s"]["default"]) + int(root_vars["max_stream_age_overrun_s"]["default"])
    assert 0 < age + 30 <= int(root_vars["deregistration_delay_s"]["default"])
    render_vars = tf.variables("modules/render")
    for name in ("deregistration_delay_s", "client_keep_alive_s"):
        assert "var.max_stream_age_s + var.max_stream_age_overrun_s + 30" in str(render_vars[name]["validation"])


def test_metrics_leave_loopback_only_where_a_scraper_is_let_in(tf: Any) -> None:
    # /metrics has no authentication; nothing in AWS scrapes it unless metrics_allowed_cidrs lets one in.
    assert tf.modules("")["render"]["metrics_scraped"] == "${length(var.metrics_allowed_cidrs) > 0}"
    assert tf.variables("modules/render")["metrics_scraped"]["default"] is False
    environment = tf.parsed["modules/render/main.tf"]["locals"][0]["environment_map"]
    assert 'HWS_METRICS_HOST = var.metrics_scraped ? "0.0.0.0" : "127.0.0.1"' in environment


def test_health_check_grace_sized_for_model_load(tf: Any) -> None:
    service = tf.resources("modules/service")["aws_ecs_service.this"]
    assert service["health_check_grace_period_seconds"] == "${var.health_check_grace_period_s}"
    assert int(tf.variables("modules/service")["health_check_grace_period_s"]["default"]) >= 60
    assert int(tf.variables("modules/render")["model_load_budget_s"]["default"]) >= 60
    assert tf.modules("")["service"]["health_check_grace_period_s"] == "${module.render.health_check_grace_period_s}"


def test_launch_template_imdsv2_encrypted_gpu_ami(tf: Any) -> None:
    lt = tf.resources("modules/gpu_cluster")["aws_launch_template.this"]
    metadata = one(lt["metadata_options"])
    assert metadata["http_tokens"] == "required"
    assert int(metadata["http_put_response_hop_limit"]) <= 2
    ebs = one(one(lt["block_device_mappings"])["ebs"])
    assert ebs["encrypted"] is True
    ssm = tf.variables("modules/gpu_cluster")["ami_ssm_parameter"]["default"]
    assert ssm == "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
    assert lt["user_data"] == "${var.user_data_base64}"
    assert tf.modules("")["gpu_cluster"]["user_data_base64"] == "${module.render.user_data_base64}"


def test_cluster_destroys_in_one_go(tf: Any) -> None:
    res = tf.resources("modules/gpu_cluster")
    provider = one(res["aws_ecs_capacity_provider.this"]["auto_scaling_group_provider"])
    asg = res["aws_autoscaling_group.this"]
    # Scale-in never picks a busy GPU instance (issue 24): managed termination protection, which
    # ECS accepts only with protect_from_scale_in on the ASG ...
    assert provider["managed_termination_protection"] == "ENABLED"
    assert provider["managed_draining"] == "ENABLED"
    assert one(provider["managed_scaling"])["status"] == "ENABLED", "termination protection needs managed scaling"
    assert asg["protect_from_scale_in"] is True, "ECS requires it with managed termination protection"
    # ... and destroy still ends: force_delete makes the provider skip its drain (which protected
    # instances would never finish) and delete the group with ForceDelete.
    assert asg["force_delete"] is True
    assert "aws_ecs_cluster.this" in str(asg["depends_on"]), "instances register with the cluster at boot"
    assert "aws_ecs_cluster_capacity_providers.this" in res
    out = tf.outputs("modules/gpu_cluster")["capacity_provider_name"]
    assert "aws_ecs_cluster_capacity_providers.this" in str(out.get("depends_on"))
    settings = one(res["aws_ecs_cluster.this"]["setting"])
    assert settings["name"] == "containerInsights"
    ecr = tf.resources("modules/ecr")["aws_ecr_repository.this"]
    # Released images are not deleted by accident: opt in per environment.
    assert var_default(tf, "ecr", ecr["force_delete"]) is False
    assert tf.variables("")["ecr_force_delete"]["default"] is False
    assert tf.modules("")["ecr"]["force_delete"] == "${var.ecr_force_delete}"


def test_service_on_capacity_provider_with_circuit_breaker(tf: Any) -> None:
    res = tf.resources("modules/service")
    service = res["aws_ecs_service.this"]
    breaker = one(service["deployment_circuit_breaker"])
    assert breaker["enable"] is True and breaker["rollback"] is True
    assert "capacity_provider_strategy" in service and "launch_type" not in service
    assert one(service["network_configuration"])["assign_public_ip"] is False
    assert "aws_appautoscaling_target.this" in res
    assert "aws_appautoscaling_policy.streams" in res
    ingress = res["aws_vpc_security_group_ingress_rule.grpc_from_alb"]
    assert ingress["referenced_security_group_id"] == "${var.alb_security_group_id}"
    assert "cidr_ipv4" not in ingress


def test_task_definition_asks_for_gpu(tf: Any) -> None:
    locals_ = tf.parsed["modules/render/main.tf"]["locals"]
    text = str(locals_)
    assert "resourceRequirements" in text and "'type': 'GPU'" in text
    td = tf.resources("modules/service")["aws_ecs_task_definition.this"]
    assert td["container_definitions"] == "${var.container_definitions_json}"
    assert "EC2" in str(td["requires_compatibilities"])


def test_execution_role_is_least_privilege(tf: Any) -> None:
    doc = tf.data("modules/service")["aws_iam_policy_document.execution"]
    for statement in doc["statement"]:
        resources = statement["resources"]
        if resources == ["*"]:
            assert statement["actions"] == ["ecr:GetAuthorizationToken"], statement
    managed = [b for b in tf.resources("modules/service") if b.startswith("aws_iam_role_policy_attachment")]
    assert not managed, "execution/task roles use scoped inline policies"


def test_network_offers_nat_and_endpoints_and_flow_logs(tf: Any) -> None:
    res = tf.resources("modules/network")
    mode = tf.variables("modules/network")["egress_mode"]
    assert "nat_gateway" in str(mode["validation"]) and "vpc_endpoints" in str(mode["validation"])
    for needed in ["aws_nat_gateway.this", "aws_vpc_endpoint.interface", "aws_vpc_endpoint.s3", "aws_flow_log.this"]:
        assert needed in res, needed
    services = tf.variables("modules/network")["interface_endpoint_services"]["default"]
    for svc in ["ecr.api", "ecr.dkr", "logs"]:
        assert svc in services
    assert int(tf.variables("modules/network")["az_count"]["default"]) >= 2


def test_root_outputs_endpoint_and_ecr(tf: Any) -> None:
    outputs = tf.outputs("")
    assert outputs["grpc_endpoint"]["value"] == "${module.alb.grpc_endpoint}"
    assert "ecr_repository_url" in outputs
    assert tf.outputs("modules/alb")["grpc_endpoint"]["value"] == "${var.domain_name}:443"
