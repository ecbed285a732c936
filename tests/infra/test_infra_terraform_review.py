"""The findings of the ECS/ALB review (issue 12), each pinned by an assertion on the parsed Terraform."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "terraform"
MODULES = ["network", "gpu_cluster", "service", "alb", "ecr", "alarms"]
AWS_DIRS = ["", *(f"modules/{m}" for m in MODULES)]


def one(blocks: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(blocks, list):
        assert len(blocks) == 1, blocks
        return blocks[0]
    return blocks


def dynamic(body: dict[str, Any], name: str) -> dict[str, Any]:
    found = [entry[name] for entry in body.get("dynamic", []) if name in entry]
    assert len(found) == 1, f"expected one dynamic {name!r} block"
    return found[0]


@pytest.mark.parametrize("directory", AWS_DIRS, ids=lambda d: d or "root")
def test_provider_constraint_spans_one_major_version(tf: Any, directory: str) -> None:
    terraform = one(tf.parsed[f"{directory}/versions.tf".lstrip("/")]["terraform"])
    aws = one(terraform["required_providers"])["aws"]
    assert aws["source"] == "hashicorp/aws"
    # ~> 6.69 is >= 6.69, < 7.0: the version the schema check (tests/infra) was extracted from, major 6 only.
    assert aws["version"] == "~> 6.69", aws["version"]


def test_remote_state_backend_is_a_partial_configuration(tf: Any) -> None:
    terraform = one(tf.parsed["versions.tf"]["terraform"])
    backend = one(terraform["backend"])
    assert backend == {"s3": {}}, "settings belong in a per-environment file given to init -backend-config"
    example = (TERRAFORM_DIR / "backend.hcl.example").read_text(encoding="utf-8")
    for key in ("bucket", "key", "region", "use_lockfile"):
        assert re.search(rf"(?m)^{key}\s*=", example), key
    ignored = (TERRAFORM_DIR.parent / ".gitignore").read_text(encoding="utf-8").split()
    assert "terraform/backend.hcl" in ignored


def test_no_deprecated_region_name_attribute() -> None:
    # Provider 6.x deprecates data.aws_region.*.name in favour of .region.
    offenders = [
        f"{path.relative_to(TERRAFORM_DIR)}: {match.group(0)}"
        for path in TERRAFORM_DIR.rglob("*.tf")
        for match in re.finditer(r"data\.aws_region\.\w+\.name\b", path.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders


def test_no_module_level_depends_on(tf: Any) -> None:
    for name, body in tf.modules("").items():
        assert "depends_on" not in body, f"module.{name}: a module-level depends_on defers every data source inside"


def test_ordering_comes_from_outputs_that_depend_on_what_must_exist(tf: Any) -> None:
    subnets = tf.outputs("modules/network")["private_subnet_ids"]
    for needed in ["aws_route.private_nat", "aws_vpc_endpoint.interface", "aws_route_table_association.private"]:
        assert needed in str(subnets["depends_on"]), needed
    capacity = tf.outputs("modules/gpu_cluster")["capacity_provider_name"]
    assert "aws_ecs_cluster_capacity_providers.this" in str(capacity["depends_on"])
    service = tf.modules("")["service"]
    assert service["private_subnet_ids"] == "${module.network.private_subnet_ids}"
    assert service["capacity_provider_name"] == "${module.gpu_cluster.capacity_provider_name}"


def test_asg_after_cluster_and_instance_refresh(tf: Any) -> None:
    asg = tf.resources("modules/gpu_cluster")["aws_autoscaling_group.this"]
    assert asg["depends_on"] == ["${aws_ecs_cluster.this}"]
    refresh = dynamic(asg, "instance_refresh")
    assert refresh["for_each"] == "${var.instance_refresh ? [1] : []}"
    content = one(refresh["content"])
    assert content["strategy"] == "Rolling"
    preferences = one(content["preferences"])
    assert preferences["min_healthy_percentage"] == 100 and preferences["max_healthy_percentage"] > 100
    assert tf.variables("modules/gpu_cluster")["instance_refresh"]["default"] is True
    assert tf.modules("")["gpu_cluster"]["ami_id"] == "${var.ami_id}"
    assert tf.variables("")["ami_id"]["default"] is None


def test_availability_zones_and_single_nat_at_the_root(tf: Any) -> None:
    network = tf.modules("")["network"]
    assert network["availability_zones"] == "${var.availability_zones}"
    assert network["single_nat_gateway"] == "${var.single_nat_gateway}"
    assert tf.variables("")["availability_zones"]["default"] == []


def test_tags_reach_instances_and_volumes(tf: Any) -> None:
    assert tf.modules("")["gpu_cluster"]["tags"] == "${local.common_tags}"
    assert "var.tags" in tf.parsed["main.tf"]["locals"][0]["common_tags"]
    template = tf.resources("modules/gpu_cluster")["aws_launch_template.this"]
    kinds = {spec["resource_type"]: spec["tags"] for spec in template["tag_specifications"]}
    assert set(kinds) >= {"instance", "volume"}
    assert all("var.tags" in tags for tags in kinds.values())


@pytest.mark.parametrize("directory", ["", "modules/gpu_cluster"], ids=["root", "gpu_cluster"])
def test_capacity_provider_name_prefix_is_validated(tf: Any, directory: str) -> None:
    conditions = [v["condition"] for v in tf.variables(directory)["name"]["validation"]]
    prefix_rule = [c for c in conditions if "fargate" in c]
    assert len(prefix_rule) == 1, conditions
    pattern = re.search(r'regex\("([^"]+)"', prefix_rule[0])
    assert pattern and prefix_rule[0].startswith("${!can(")
    # RE2 and Python agree on this pattern: the names AWS refuses match, ordinary ones do not.
    compiled = re.compile(pattern.group(1).replace("\\\\", "\\"))
    assert all(compiled.search(n) for n in ["ecs-prod", "aws1", "fargate-x"])
    assert not any(compiled.search(n) for n in ["hws", "speech-ecs", "prod-aws"])


def test_image_tag_has_no_moving_default(tf: Any) -> None:
    image_tag = tf.variables("")["image_tag"]
    assert image_tag["default"] is None
    conditions = " ".join(v["condition"] for v in image_tag["validation"])
    assert "var.image != null" in conditions and "^latest" in conditions
    ecr = tf.resources("modules/ecr")["aws_ecr_repository.this"]
    assert ecr["image_tag_mutability"] == "IMMUTABLE"
    required = one(tf.parsed["versions.tf"]["terraform"])["required_version"]
    # 1.11: the S3 backend's use_lockfile (1.9 would do for validations naming other variables).
    assert required == ">= 1.11.0", "use_lockfile in backend.hcl.example needs Terraform 1.11"


def test_vpc_endpoints_include_secrets_manager_for_the_api_keys(tf: Any) -> None:
    assert tf.modules("")["network"]["secrets_manager_endpoint"] == "${var.api_keys_secret_arn != null}"
    locals_ = str(tf.parsed["modules/network/main.tf"]["locals"])
    assert 'var.secrets_manager_endpoint ? ["secretsmanager"]' in locals_
    endpoint = tf.resources("modules/network")["aws_vpc_endpoint.interface"]
    assert "local.interface_services" in endpoint["for_each"]


def test_execution_role_can_decrypt_the_secret_key(tf: Any) -> None:
    doc = tf.data("modules/service")["aws_iam_policy_document.execution"]
    statements = [d["statement"] for d in doc["dynamic"]]
    decrypt = [s for s in statements if "api_keys_secret_kms_key_arn" in s["for_each"]]
    assert len(decrypt) == 1
    content = one(decrypt[0]["content"])
    assert content["actions"] == ["kms:Decrypt"] and content["resources"] == ["${statement.value}"]
    assert tf.modules("")["service"]["api_keys_secret_kms_key_arn"] == "${var.api_keys_secret_kms_key_arn}"


def test_kms_key_policy_lets_auto_scaling_and_logs_use_the_key(tf: Any) -> None:
    services = tf.data("")["aws_iam_policy_document.kms_services"]
    by_sid = {s["sid"]: s for s in services["statement"]}
    slr = by_sid["AutoScalingServiceLinkedRoleUse"]
    assert "AWSServiceRoleForAutoScaling" in str(slr["principals"])
    assert {"kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"} <= set(slr["actions"])
    grants = by_sid["AutoScalingServiceLinkedRoleGrants"]
    assert grants["actions"] == ["kms:CreateGrant"] and "kms:GrantIsForAWSResource" in str(grants["condition"])
    logs = by_sid["CloudWatchLogs"]
    assert "logs.${local.region}.amazonaws.com" in str(logs["principals"])
    assert "kms:EncryptionContext:aws:logs:arn" in str(logs["condition"])
    key = tf.resources("")["aws_kms_key.this"]
    assert key["policy"] == "${data.aws_iam_policy_document.kms.json}" and key["enable_key_rotation"] is True
    # The created key or the given one, with the same policy statements offered for the latter.
    for module in ["ecr", "network", "gpu_cluster"]:
        assert "local.kms_key_arn" in str(tf.modules("")[module]), module
    assert tf.modules("")["service"]["log_kms_key_arn"] == "${local.kms_key_arn}"
    assert tf.outputs("")["kms_key_policy_statements_json"]["value"] == (
        "${data.aws_iam_policy_document.kms_services.json}"
    )


# ---------------------------------------------------------------- issue 24: first apply and every deploy
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "aws-provider-6.69.1.json.gz"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def lifecycle_checks(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [check for block in body.get("lifecycle", []) for check in block.get(kind, [])]


def test_the_arguments_issue_24_relies_on_exist_in_the_provider_schema() -> None:
    from tests.infra.tf_schema import load_schema

    schema = load_schema(SCHEMA_PATH)
    blocks = schema["blocks"]
    service = schema["resource"]["aws_ecs_service"]
    assert "wait_for_steady_state" in service["args"]
    assert set(blocks[service["blocks"]["alarms"]]["args"]) == {"alarm_names", "enable", "rollback"}
    assert {"create", "update", "delete"} <= set(blocks[service["blocks"]["timeouts"]]["args"])
    provider = schema["resource"]["aws_ecs_capacity_provider"]["blocks"]["auto_scaling_group_provider"]
    assert {"managed_termination_protection", "managed_draining"} <= set(blocks[provider]["args"])
    assert {"protect_from_scale_in", "force_delete"} <= set(schema["resource"]["aws_autoscaling_group"]["args"])
    assert "load_balancing_algorithm_type" in schema["resource"]["aws_lb_target_group"]["args"]
    validation = schema["resource"]["aws_acm_certificate_validation"]["blocks"]["timeouts"]
    assert "create" in blocks[validation]["args"]
    assert "locations" in schema["data"]["aws_ec2_instance_type_offerings"]["attrs"]
    assert "value" in schema["data"]["aws_servicequotas_service_quota"]["attrs"]
    assert "resource_record_sets" in schema["data"]["aws_route53_records"]["attrs"]
    assert "names" in schema["data"]["aws_iam_roles"]["attrs"]


def test_apply_fails_when_the_rollout_fails(tf: Any) -> None:
    service = tf.resources("modules/service")["aws_ecs_service.this"]
    assert service["wait_for_steady_state"] == "${var.wait_for_steady_state}"
    assert tf.variables("modules/service")["wait_for_steady_state"]["default"] is True
    assert tf.variables("")["wait_for_steady_state"]["default"] is True
    # Unplaceable tasks are never circuit-breaker failures: the wait is bounded, and fails.
    timeouts = one(service["timeouts"])
    assert timeouts["create"] == timeouts["update"] == "${var.deployment_timeout_minutes}m"
    assert 20 <= tf.variables("modules/service")["deployment_timeout_minutes"]["default"] <= 180
    # A rollback also reaches a steady state: the postcondition turns it into an error.
    (post,) = lifecycle_checks(service, "postcondition")
    assert "self.task_definition == aws_ecs_task_definition.this.arn" in post["condition"]
    assert "rolled back" in post["error_message"]
    # Deployment alarms wired to the rollout, with rollback.
    alarms = dynamic(service, "alarms")
    content = one(alarms["content"])
    assert content["alarm_names"] == "${alarms.value}" and content["enable"] is True and content["rollback"] is True
    root = tf.modules("")
    assert root["service"]["deployment_alarm_names"] == "${module.alarms.deployment_alarm_names}"
    assert root["service"]["wait_for_steady_state"] == "${var.wait_for_steady_state}"
    # No cycle: the alarms name the service by its name, not by module.service's output.
    assert root["alarms"]["service_name"] == "${var.name}" and root["service"]["name"] == "${var.name}"
    names = tf.outputs("modules/alarms")["deployment_alarm_names"]["value"]
    assert "alb_5xx" in names and "target_connection_errors" in names
    assert tf.variables("modules/alarms")["deployment_alarms"]["default"] == ["alb_5xx", "target_connection_errors"]


def test_alarms_reach_someone(tf: Any) -> None:
    res = tf.resources("modules/alarms")
    topic = res["aws_sns_topic.this"]
    assert topic["count"] == "${var.alarm_topic_arn == null ? 1 : 0}"
    assert topic["kms_master_key_id"] == "${var.kms_key_arn}"
    subscription = res["aws_sns_topic_subscription.email"]
    assert subscription["protocol"] == "email" and "alarm_email_addresses" in subscription["for_each"]
    assert "aws_sns_topic.this[0].arn" in str(tf.parsed["modules/alarms/main.tf"]["locals"])
    root = tf.modules("")["alarms"]
    assert root["alarm_email_addresses"] == "${var.alarm_email_addresses}"
    assert root["kms_key_arn"] == "${local.kms_key_arn}"
    (rule,) = tf.variables("")["alarm_email_addresses"]["validation"]
    assert (
        "var.alarm_topic_arn != null" in rule["condition"]
        and "var.allow_alarms_without_destination" in rule["condition"]
    )
    assert tf.variables("")["allow_alarms_without_destination"]["default"] is False
    # The created key lets CloudWatch publish to the topic it encrypts.
    sids = {s["sid"] for s in tf.data("")["aws_iam_policy_document.kms_services"]["statement"]}
    assert "CloudWatchAlarmsToSns" in sids


def test_an_alarm_fires_when_the_scaling_metric_stops_while_tasks_run(tf: Any) -> None:
    alarm = tf.resources("modules/alarms")["aws_cloudwatch_metric_alarm.stream_metric_missing"]
    assert alarm["treat_missing_data"] == "breaching"
    assert alarm["count"] == "${var.emf_enabled ? 1 : 0}"
    assert tf.modules("")["alarms"]["emf_enabled"] == "${var.emf_interval_s > 0}"
    queries = {q["id"]: q for q in alarm["metric_query"]}
    (expression,) = [q for q in queries.values() if q.get("return_data") is True]
    # 1 only where a task runs and no sample arrived; a service at zero tasks is quiet.
    assert expression["expression"] == "IF(FILL(running, 0) >= 1 AND FILL(samples, 0) == 0, 1, 0)"
    assert alarm["comparison_operator"] == "GreaterThanOrEqualToThreshold" and alarm["threshold"] == 1
    samples = one(queries["samples"]["metric"])
    assert samples["metric_name"] == "StreamUtilization" and samples["stat"] == "SampleCount"
    assert samples["namespace"] == "${var.metrics_namespace}" and samples["dimensions"] == "${local.emf}"
    running = one(queries["running"]["metric"])
    assert running["metric_name"] == "RunningTaskCount" and running["namespace"] == "ECS/ContainerInsights"
    assert running["dimensions"] == "${local.ecs}"


def test_scaling_knobs_are_exposed(tf: Any) -> None:
    root_vars, root = tf.variables(""), tf.modules("")
    assert root_vars["managed_scaling_target_capacity"]["default"] == 100
    assert root["gpu_cluster"]["managed_scaling_target_capacity"] == "${var.managed_scaling_target_capacity}"
    provider = one(tf.resources("modules/gpu_cluster")["aws_ecs_capacity_provider.this"]["auto_scaling_group_provider"])
    assert one(provider["managed_scaling"])["target_capacity"] == "${var.managed_scaling_target_capacity}"
    tg = tf.resources("modules/alb")["aws_lb_target_group.grpc"]
    assert tg["load_balancing_algorithm_type"] == "${var.load_balancing_algorithm_type}"
    assert "slow_start" not in tg, "least_outstanding_requests cannot be combined with slow start"
    assert tf.variables("modules/alb")["load_balancing_algorithm_type"]["default"] == "least_outstanding_requests"
    assert root_vars["load_balancing_algorithm_type"]["default"] == "least_outstanding_requests"
    assert root["alb"]["load_balancing_algorithm_type"] == "${var.load_balancing_algorithm_type}"
    assert root["service"]["stream_utilization_target"] == "${var.stream_utilization_target}"
    operations = (DOCS / "operations.md").read_text(encoding="utf-8")
    for knob in ("stream_utilization_target", "managed_scaling_target_capacity", "load_balancing_algorithm_type"):
        assert f"`{knob}`" in operations, knob


def test_first_apply_pitfalls_are_checked_at_plan(tf: Any) -> None:
    # create_kms_key in an account without the Auto Scaling service-linked role.
    (kms_pre,) = lifecycle_checks(tf.resources("")["aws_kms_key.this"], "precondition")
    assert "data.aws_iam_roles.autoscaling_service_linked" in kms_pre["condition"]
    assert "aws iam create-service-linked-role --aws-service-name autoscaling.amazonaws.com" in kms_pre["error_message"]
    # Instance type offered in every chosen zone; the GPU vCPU quota covers max_tasks + 1.
    data = tf.data("modules/gpu_cluster")
    (offered,) = lifecycle_checks(data["aws_ec2_instance_type_offerings.gpu"], "postcondition")
    assert "setsubtract(var.availability_zones, self.locations)" in offered["condition"]
    assert tf.modules("")["gpu_cluster"]["availability_zones"] == "${module.network.availability_zones}"
    quota = data["aws_servicequotas_service_quota.gpu"]
    assert quota["service_code"] == "ec2" and "L-DB2E81BA" in str(tf.parsed["modules/gpu_cluster/main.tf"]["locals"])
    (enough,) = lifecycle_checks(quota, "postcondition")
    assert enough["condition"] == "${self.value >= local.quota_vcpus}"
    assert tf.modules("")["gpu_cluster"]["max_size"] == "${var.max_tasks + 1}"
    # ACM validation bounded; an existing record for the name stops the plan, not the alias.
    alb = tf.resources("modules/alb")
    assert (
        one(alb["aws_acm_certificate_validation.this"]["timeouts"])["create"] == "${var.certificate_validation_timeout}"
    )
    (record,) = lifecycle_checks(alb["aws_route53_record.alias"], "precondition")
    assert record["condition"] == "${length(local.conflicting_records) == 0}"
    assert "allow_overwrite" not in alb["aws_route53_record.alias"]
    assert "data.aws_route53_records.existing" in str(tf.parsed["modules/alb/main.tf"]["locals"])
    # The ECR lifecycle never expires a tagged image unless asked to.
    assert tf.variables("modules/ecr")["expire_tag_patterns"]["default"] == []
    assert "length(var.expire_tag_patterns) == 0 ? []" in str(tf.parsed["modules/ecr/main.tf"]["locals"])


def test_required_version_and_docs_agree_and_the_lock_file_is_committed(tf: Any, repo_root: Path) -> None:
    import subprocess

    required = one(tf.parsed["versions.tf"]["terraform"])["required_version"]
    version = re.fullmatch(r">= (\d+\.\d+)\.0", required)
    assert version, required
    texts = {p.name: p.read_text(encoding="utf-8") for p in DOCS.glob("*.md")}
    texts["terraform/README"] = (TERRAFORM_DIR / "backend.hcl.example").read_text(encoding="utf-8")
    stated = {(name, m.group(1)) for name, t in texts.items() for m in re.finditer(r"Terraform (1\.\d+) or later", t)}
    assert stated, "the docs must state the Terraform version"
    assert {v for _, v in stated} == {version.group(1)}, stated
    assert "terraform providers lock" in texts["operations.md"]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "terraform/.terraform.lock.hcl"], cwd=repo_root, check=False
    ).returncode
    assert ignored == 1, "terraform/.terraform.lock.hcl must not be git-ignored"


# Root variable validations, evaluated by Terraform itself: terraform/variables.tf holds only
# variable blocks, so a copy of it is a provider-free module that `terraform test` plans offline.
ROOT_VALIDATION_TESTS = """
variables {
  domain_name           = "stt.example.com"
  hosted_zone_name      = "example.com"
  image_tag             = "1.0.0"
  alarm_email_addresses = ["oncall@example.com"]
}

run "defaults_are_accepted" {
  command = plan
}

run "min_tasks_zero_is_rejected" {
  command = plan
  variables {
    min_tasks = 0
  }
  expect_failures = [var.min_tasks]
}

run "max_tasks_below_min_tasks_is_rejected" {
  command = plan
  variables {
    min_tasks = 3
    max_tasks = 2
  }
  expect_failures = [var.max_tasks]
}

run "image_by_digest_is_accepted" {
  command = plan
  variables {
    image = "registry.example.com/hws@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
}

run "image_latest_is_rejected" {
  command = plan
  variables {
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hws:latest"
  }
  expect_failures = [var.image]
}

run "image_without_tag_is_rejected" {
  command = plan
  variables {
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hws"
  }
  expect_failures = [var.image]
}

run "image_digest_is_accepted_alone" {
  command = plan
  variables {
    image_tag    = null
    image_digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }
}

run "malformed_image_digest_is_rejected" {
  command = plan
  variables {
    image_digest = "0123456789abcdef"
  }
  expect_failures = [var.image_digest]
}

run "no_alarm_destination_is_rejected" {
  command = plan
  variables {
    alarm_email_addresses = []
  }
  expect_failures = [var.alarm_email_addresses]
}

run "no_alarm_destination_when_explicitly_allowed" {
  command = plan
  variables {
    alarm_email_addresses            = []
    allow_alarms_without_destination = true
  }
}

run "an_alarm_topic_of_your_own_is_a_destination" {
  command = plan
  variables {
    alarm_email_addresses = []
    alarm_topic_arn       = "arn:aws:sns:us-east-1:123456789012:hws-alarms"
  }
}
"""


def test_root_variable_validations_reject_the_traps(
    infra_tool: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("TF_CLI_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    monkeypatch.setenv("TF_DATA_DIR", str(tmp_path / "tfdata"))
    module = tmp_path / "root_variables"
    (module / "tests").mkdir(parents=True)
    (module / "variables.tf").write_text((TERRAFORM_DIR / "variables.tf").read_text(encoding="utf-8"))
    (module / "tests" / "validations.tftest.hcl").write_text(ROOT_VALIDATION_TESTS, encoding="utf-8")
    init = infra_tool("terraform", module, "init", "-backend=false", "-input=false", "-no-color")
    assert init["retcode"] == 0, init["stdout"] + init["stderr"]
    result = infra_tool("terraform", module, "test", "-no-color")
    text = result["stdout"] + result["stderr"]
    assert result["retcode"] == 0, text
    match = re.search(r"(\d+) passed, (\d+) failed", text)
    assert match and int(match.group(1)) == ROOT_VALIDATION_TESTS.count('run "') and match.group(2) == "0", text
