"""Terraform sources against the AWS provider's schema and against themselves.

Input: the python-hcl2 parse of terraform/ with blocks marked (`infra_tool.py hcl-blocks`)
and the schema extracted by scripts/extract_aws_schema.py. Standard library only.

Checks, each problem one line "file: where: what":
- every resource and data block: each argument is one of the type's arguments, each nested
  block (dynamic ones included) one of its blocks, at every depth, a block is not written
  as an argument nor an argument as a block, and every required argument or block is there;
- every reference in an expression: aws_x.name[.attr] and data.aws_x.name[.attr] name a
  block declared in the same module and an attribute of its type; var.x, local.x and
  module.m.output name what the module declares (and the called module outputs);
- every module call: its arguments are the called module's variables, and each variable
  without a default is given.
"""

from __future__ import annotations

import difflib
import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

RESOURCE_META = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
MODULE_META = {"source", "version", "count", "for_each", "depends_on", "providers"}
EXPRESSION = re.compile(r"\$\{")
# aws_x.name / data.aws_x.name, an optional index ([0], [*], ["k"], [each.key]) and attribute.
RESOURCE_REF = re.compile(r"(?<![\w.])(data\.)?(aws_\w+)\.(\w+)((?:\[[^\]]*\])*)(?:\.(\w+))?")
OTHER_REF = re.compile(r"(?<![\w.])(var|local|module)\.(\w+)(?:\.(\w+))?")


def load_schema(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


@dataclass
class Module:
    """What one directory of terraform/ declares."""

    files: dict[str, Any] = field(default_factory=dict)

    def entries(self, kind: str) -> Iterator[tuple[str, str, Any]]:
        """(file, name, body) for every top-level block of a kind (resource and data: "type.name"),
        or, for locals, every local value."""
        for file, document in self.files.items():
            for entry in document.get(kind, []):
                for key, body in entry.items():
                    if key.startswith("__"):
                        continue
                    if kind in ("resource", "data"):
                        for name, inner in body.items():
                            if not name.startswith("__"):
                                yield file, f"{key}.{name}", inner
                    else:
                        yield file, key, body


class Checker:
    def __init__(self, parsed: dict[str, Any], schema: dict[str, Any]) -> None:
        self.schema = schema
        self.modules: dict[str, Module] = {}
        for path, document in parsed.items():
            directory = str(PurePosixPath(path).parent)
            self.modules.setdefault(directory, Module()).files[path] = document
        self.problems: list[str] = []

    def report(self, file: str, where: str, what: str) -> None:
        self.problems.append(f"{file}: {where}: {what}")

    # ------------------------------------------------------------- blocks against the schema
    def check_blocks(self) -> list[str]:
        self.problems = []
        for module in self.modules.values():
            for kind, label in (("resource", ""), ("data", "data.")):
                for file, name, body in module.entries(kind):
                    type_name = name.split(".")[0]
                    entry = self.schema["resource" if kind == "resource" else "data"].get(type_name)
                    if entry is None:
                        self.report(file, label + name, f"{type_name} is not a {kind} type of the AWS provider")
                        continue
                    self.check_body(file, label + name, body, entry, RESOURCE_META)
        return self.problems

    def check_body(self, file: str, where: str, body: dict[str, Any], block: dict[str, Any], meta: set[str]) -> None:
        args, blocks = set(block["args"]), block["blocks"]
        present = set()
        for key, value in body.items():
            if key.startswith("__") or key in meta:
                continue
            if key == "dynamic":
                for dynamic in value:
                    for name, spec in dynamic.items():
                        present.add(name)
                        if name not in blocks:
                            self.report(file, f"{where}.dynamic.{name}", self.unknown(name, block, "block"))
                            continue
                        for content in spec.get("content", []):
                            self.check_body(
                                file, f"{where}.{name}", content, self.schema["blocks"][blocks[name]], set()
                            )
                continue
            present.add(key)
            if is_block(value):
                if key in blocks:
                    for inner in value:
                        self.check_body(file, f"{where}.{key}", inner, self.schema["blocks"][blocks[key]], set())
                elif key in args:
                    self.report(file, f"{where}.{key}", "an argument written as a block: use `key = value`")
                else:
                    self.report(file, f"{where}.{key}", self.unknown(key, block, "block"))
            elif key in blocks:
                self.report(file, f"{where}.{key}", "a block written as an argument: use `key { ... }`")
            elif key not in args:
                self.report(file, f"{where}.{key}", self.unknown(key, block, "argument"))
        for required in block["required"]:
            if required not in present:
                self.report(file, where, f"required {'block' if required in blocks else 'argument'} {required} missing")

    @staticmethod
    def unknown(name: str, block: dict[str, Any], what: str) -> str:
        close = difflib.get_close_matches(name, [*block["args"], *block["blocks"]], n=3)
        return f"unknown {what} {name}" + (f" (did you mean {', '.join(close)}?)" if close else "")

    # ------------------------------------------------------------- references and module calls
    def check_references(self) -> list[str]:
        self.problems = []
        for directory, module in self.modules.items():
            declared = {name for _, name, _ in module.entries("resource")}
            declared |= {f"data.{name}" for _, name, _ in module.entries("data")}
            variables = {name for _, name, _ in module.entries("variable")}
            locals_ = {name for _, name, _ in module.entries("locals")}
            calls = {name: body for _, name, body in module.entries("module")}
            for file, document in module.files.items():
                for where, text in strings(document):
                    if not EXPRESSION.search(text):
                        continue
                    for match in RESOURCE_REF.finditer(text):
                        self.check_resource_ref(file, where, match, declared)
                    for match in OTHER_REF.finditer(text):
                        kind, name, attr = match.groups()
                        if kind == "var" and name not in variables:
                            self.report(file, where, f"var.{name} is not declared")
                        elif kind == "local" and name not in locals_:
                            self.report(file, where, f"local.{name} is not declared")
                        elif kind == "module":
                            self.check_module_ref(file, where, directory, calls, name, attr)
            for file, name, body in module.entries("module"):
                self.check_module_call(file, directory, name, body)
        return self.problems

    def check_resource_ref(self, file: str, where: str, match: re.Match[str], declared: set[str]) -> None:
        data, type_name, name, _, attr = match.groups()
        kind = "data" if data else "resource"
        address = f"{data or ''}{type_name}.{name}"
        entry = self.schema[kind].get(type_name)
        if entry is None:
            self.report(file, where, f"{address}: {type_name} is not a {kind} type of the AWS provider")
        elif address not in declared:
            self.report(file, where, f"{address} is not declared in this module")
        elif attr is not None and attr not in entry["attrs"]:
            self.report(file, where, f"{address}.{attr}: {type_name} has no attribute {attr}")

    def called(self, directory: str, body: dict[str, Any]) -> Module | None:
        source = str(body.get("source", ""))
        if not source.startswith("."):
            return None
        target = str(PurePosixPath(directory, source)).replace("/./", "/").removeprefix("./")
        return self.modules.get(str(PurePosixPath(*[p for p in PurePosixPath(target).parts if p != "."])))

    def check_module_ref(
        self, file: str, where: str, directory: str, calls: dict[str, Any], name: str, attr: str | None
    ) -> None:
        if name not in calls:
            self.report(file, where, f"module.{name} is not called in this module")
            return
        target = self.called(directory, calls[name])
        if target is not None and attr is not None and attr not in {n for _, n, _ in target.entries("output")}:
            self.report(file, where, f"module.{name}.{attr}: the module has no output {attr}")

    def check_module_call(self, file: str, directory: str, name: str, body: dict[str, Any]) -> None:
        target = self.called(directory, body)
        if target is None:
            return
        variables = {n: b for _, n, b in target.entries("variable")}
        for key in body:
            if not key.startswith("__") and key not in MODULE_META and key not in variables:
                self.report(file, f"module.{name}.{key}", f"unknown argument {key}: the module has no such variable")
        for variable, spec in variables.items():
            if "default" not in spec and variable not in body:
                self.report(file, f"module.{name}", f"required argument {variable} missing")


def strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every string in a parsed document."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, inner in value.items():
            if not key.startswith("__"):
                yield from strings(inner, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for inner in value:
            yield from strings(inner, where)
