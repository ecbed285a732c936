"""terraform/ against the AWS provider's own schema (hashicorp/aws 6.69.1, extracted from PyPI
cdktn-provider-aws by scripts/extract_aws_schema.py) and against its own declarations.

No provider binary and no registry are needed: the schema is committed, the sources are
parsed with python-hcl2 (blocks marked), and tests/infra/tf_schema.py does the checking.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.tf_schema import Checker, load_schema

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "terraform"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "aws-provider-6.69.1.json.gz"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return load_schema(SCHEMA_PATH)


@pytest.fixture(scope="module")
def parsed(infra_tool: Callable[..., Any]) -> dict[str, Any]:
    result: dict[str, Any] = infra_tool("hcl-blocks", TERRAFORM_DIR)
    return result


def test_schema_is_the_extract_of_the_pinned_major_version(schema: dict[str, Any], tf: Any) -> None:
    assert schema["version"] == "6.69.1" and "cdktn-provider-aws" in schema["extracted_from"]
    assert len(schema["resource"]) > 1500 and len(schema["data"]) > 600
    constraint = tf.parsed["versions.tf"]["terraform"][0]["required_providers"][0]["aws"]["version"]
    match = re.fullmatch(r"~> (\d+)\.(\d+)", constraint)
    assert match, constraint
    major, minor, _ = map(int, schema["version"].split("."))
    # ~> 6.69 allows 6.69 and later 6.x: the schema's version is admitted and is of that major version.
    assert int(match.group(1)) == major and int(match.group(2)) <= minor
    # Every type the configuration uses is known to the schema (else the checks below would be vacuous).
    used = {name.split(".")[0] for d in ["", "modules/network", "modules/service"] for name in tf.resources(d)}
    assert used <= set(schema["resource"]), used - set(schema["resource"])


def test_resource_and_data_blocks_match_the_provider_schema(parsed: dict[str, Any], schema: dict[str, Any]) -> None:
    checker = Checker(parsed, schema)
    assert checker.check_blocks() == []
    checked = sum(
        1 for module in checker.modules.values() for kind in ("resource", "data") for _ in module.entries(kind)
    )
    assert checked > 60, "too few blocks checked"


def test_references_and_module_calls_resolve(parsed: dict[str, Any], schema: dict[str, Any]) -> None:
    assert Checker(parsed, schema).check_references() == []


# (file, text in it, replacement, what the checker must say)
MISTAKES = [
    ("modules/alb/main.tf", "  idle_timeout               = var.idle_timeout_s\n",
     "  idle_timeout               = var.idle_timeout_s\n  idle_timout                = 60\n",
     "aws_lb.this.idle_timout: unknown argument idle_timout (did you mean idle_timeout"),
    ("modules/alb/main.tf", "  health_check {\n    enabled", "  health_check = {\n    enabled",
     "aws_lb_target_group.grpc.health_check: a block written as an argument"),
    ("modules/gpu_cluster/main.tf", "  max_size            = var.max_size\n", "",
     "aws_autoscaling_group.this: required argument max_size missing"),
    ("modules/alb/main.tf", "= aws_lb.this.dns_name\n", "= aws_lb.this.dns_nme\n",
     "aws_lb.this.dns_nme: aws_lb has no attribute dns_nme"),
    ("modules/gpu_cluster/main.tf", "      target_capacity           =", "      target_capcity            =",
     "aws_ecs_capacity_provider.this.auto_scaling_group_provider.managed_scaling.target_capcity: unknown argument"),
    ("modules/gpu_cluster/main.tf", "        skip_matching          = true", "        skip_matchng           = true",
     "aws_autoscaling_group.this.instance_refresh.preferences.skip_matchng: unknown argument"),
    ("modules/network/main.tf", "data.aws_region.current.region}.s3", "data.aws_region.curent.region}.s3",
     "data.aws_region.curent is not declared in this module"),
    ("main.tf", "  force_delete = var.ecr_force_delete", "  force_delete = var.ecr_force_delet",
     "var.ecr_force_delet is not declared"),
    ("main.tf", "  alb_arn_suffix            = module.alb.alb_arn_suffix",
     "  alb_arn_suffix            = module.alb.arn_suffix", "module.alb.arn_suffix: the module has no output"),
    ("main.tf", "  kms_key_arn  = local.kms_key_arn\n  force_delete",
     "  kms_key     = local.kms_key_arn\n  force_delete", "module.ecr.kms_key: unknown argument kms_key"),
    ("main.tf", "  vpc_id                     = module.network.vpc_id\n  public_subnet_ids",
     "  public_subnet_ids", "module.alb: required argument vpc_id missing"),
]  # fmt: skip


def test_checker_reports_injected_mistakes(
    infra_tool: Callable[..., Any], schema: dict[str, Any], tmp_path: Path
) -> None:
    """A copy of terraform/ with one mistake of each kind: each is reported, where it is."""
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform*"))
    for file, text, replacement, _ in MISTAKES:
        source = (copy / file).read_text(encoding="utf-8")
        assert source.count(text) == 1, (file, text)
        (copy / file).write_text(source.replace(text, replacement), encoding="utf-8")
    checker = Checker(infra_tool("hcl-blocks", copy), schema)
    problems = checker.check_blocks() + checker.check_references()
    for file, _, _, expected in MISTAKES:
        assert any(p.startswith(f"{file}: ") and expected in p for p in problems), (expected, problems)
    assert len(problems) == len(MISTAKES), problems
