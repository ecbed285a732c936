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
    assert required == ">= 1.9.0", "validations that name another variable need Terraform 1.9"


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
