"""Extract the AWS provider's resource and data source schema from the cdktn-provider-aws wheel.

The PyPI package cdktn-provider-aws (CDK Terrain bindings, generated from the provider's own
schema; its metadata names hashicorp/aws 6.69.1) carries a jsii assembly that lists, for
every resource and data source, its arguments (optional or not), its nested blocks and its
attributes. This script turns it into the compact schema the Terraform check in tests/infra
reads, once; the wheel is not a dependency of anything.

    pip download --no-deps cdktn-provider-aws==25.8.1 -d /tmp/cdktn
    python scripts/extract_aws_schema.py /tmp/cdktn/cdktn_provider_aws-25.8.1-py3-none-any.whl \\
        tests/infra/schemas/aws-provider-6.69.1.json.gz

Output (gzip JSON): {"provider", "version", "extracted_from", "resource": {type: entry},
"data": {type: entry}, "blocks": {id: block}} where an entry is a block plus "attrs" (the
names an expression may read: arguments and computed attributes) and a block is {"args":
[...], "required": [...], "blocks": {name: id}}; block definitions are shared through ids.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

TYPE_LINK = re.compile(r"/docs/(resources|data-sources)/\w+ (aws_\w+)\}")
ARG_LINK = re.compile(r"#(\w+) \w+#\w+\}")
BLOCK_SUMMARY = re.compile(r"^(\w+) block\.")
PROVIDER_VERSION = re.compile(r"hashicorp/aws/(\d+\.\d+\.\d+)/docs/")


def load_assembly(path: Path) -> dict[str, Any]:
    """The .jsii assembly from the wheel (inside its _jsii/*.jsii.tgz), or a .jsii file itself."""
    if path.suffix != ".whl":
        return json.loads(path.read_bytes())
    with zipfile.ZipFile(path) as wheel:
        (member,) = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(wheel.read(member))) as tgz:
            handle = tgz.extractfile("package/.jsii")
            assert handle is not None
            return json.loads(handle.read())


def snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", camel).lower()


def struct_of(type_ref: dict[str, Any]) -> str | None:
    """The struct fqn of a block-typed property: a struct, or a list of structs (maybe IResolvable)."""
    if "fqn" in type_ref:
        return str(type_ref["fqn"])
    for option in type_ref.get("union", {}).get("types", []):
        found = struct_of(option)
        if found and found != "cdktn.IResolvable":
            return found
    element = type_ref.get("collection", {}).get("elementtype")
    return struct_of(element) if element else None


class Extractor:
    def __init__(self, types: dict[str, Any]) -> None:
        self.types = types
        self.blocks: dict[str, dict[str, Any]] = {}

    def block_id(self, fqn: str) -> str:
        short = fqn.split(".", 1)[1]
        if short not in self.blocks:
            self.blocks[short] = {}  # placeholder first: recursive structs terminate
            self.blocks[short] = self.block(self.types[fqn].get("properties", []))
        return short

    def block(self, properties: list[dict[str, Any]]) -> dict[str, Any]:
        args: list[str] = []
        required: list[str] = []
        blocks: dict[str, str] = {}
        for prop in properties:
            docs = prop.get("docs", {})
            text = f"{docs.get('summary', '')} {docs.get('remarks', '')}"
            block = BLOCK_SUMMARY.match(docs.get("summary", ""))
            struct = struct_of(prop["type"])
            if block and struct and struct in self.types:
                name = block.group(1)
                blocks[name] = self.block_id(struct)
            else:
                link = ARG_LINK.search(text)
                name = link.group(1) if link else snake(prop["name"])
                args.append(name)
            if not prop.get("optional"):
                required.append(name)
        return {"args": sorted(args), "required": sorted(required), "blocks": dict(sorted(blocks.items()))}

    def entry(self, cls: dict[str, Any]) -> dict[str, Any]:
        # The constructor's config struct (usually <Class>Config; ConfigA where that name is taken).
        (config_fqn,) = [p["type"]["fqn"] for p in cls["initializer"]["parameters"] if p["name"] == "config"]
        config = self.types[config_fqn]
        entry = self.block(config.get("properties", []))
        camel_to_snake = {p["name"]: n for p, n in zip(config.get("properties", []), self._names(config), strict=True)}
        attrs = set(entry["args"]) | set(entry["blocks"])
        names = {p["name"] for p in cls.get("properties", []) if not p.get("static")}
        for name in names:
            if name.endswith("Input") and name[: -len("Input")] in names:
                continue
            attrs.add(camel_to_snake.get(name, snake(name)))
        entry["attrs"] = sorted(attrs)
        return entry

    def _names(self, config: dict[str, Any]) -> list[str]:
        names = []
        for prop in config.get("properties", []):
            docs = prop.get("docs", {})
            block = BLOCK_SUMMARY.match(docs.get("summary", ""))
            link = ARG_LINK.search(f"{docs.get('summary', '')} {docs.get('remarks', '')}")
            names.append(block.group(1) if block else link.group(1) if link else snake(prop["name"]))
        return names


def extract(assembly: dict[str, Any]) -> dict[str, Any]:
    types: dict[str, Any] = assembly["types"]
    extractor = Extractor(types)
    out: dict[str, dict[str, Any]] = {"resource": {}, "data": {}}
    versions: set[str] = set()
    for cls in types.values():
        if cls.get("kind") != "class" or cls.get("base") not in (
            "cdktn.TerraformResource",
            "cdktn.TerraformDataSource",
        ):
            continue
        summary = cls.get("docs", {}).get("summary", "")
        match = TYPE_LINK.search(summary)
        if not match:
            continue
        versions.update(PROVIDER_VERSION.findall(summary))
        kind = "resource" if match.group(1) == "resources" else "data"
        out[kind][match.group(2)] = extractor.entry(cls)
    (version,) = versions
    return {
        "provider": "registry.terraform.io/hashicorp/aws",
        "version": version,
        "extracted_from": f"PyPI cdktn-provider-aws {assembly['version']} (jsii assembly {assembly['name']})",
        "resource": dict(sorted(out["resource"].items())),
        "data": dict(sorted(out["data"].items())),
        "blocks": dict(sorted(extractor.blocks.items())),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the cdktn-provider-aws wheel, or its .jsii file")
    parser.add_argument("output", type=Path, help="where to write the schema (.json.gz)")
    args = parser.parse_args(argv)
    schema = extract(load_assembly(args.source))
    data = json.dumps(schema, separators=(",", ":"), sort_keys=False).encode()
    # No name and mtime 0 in the gzip header: the same input gives the same bytes.
    with args.output.open("wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as out:
        out.write(data)
    print(
        f"{len(schema['resource'])} resources, {len(schema['data'])} data sources, {len(schema['blocks'])} blocks "
        f"of hashicorp/aws {schema['version']}: {args.output} ({args.output.stat().st_size // 1024} KiB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
