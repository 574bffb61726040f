#!/usr/bin/env python3
"""Turn offline schema sources into the JSON Schema files kubeconform reads.

Used by deploy/validate.sh; the output goes to the tools cache, never into the repository.

  kubernetes SRC OUT   SRC: a `vX.Y.Z-local-strict` folder of the PyPI package
                       kubernetes-validate (one file per kind, `$ref`s into a shared
                       `/api/_definitions.json`). Writes self-contained ("standalone")
                       schemas to OUT: each top-level kind with the closure of the
                       definitions it refers to, so kubeconform needs no resolver.
  crds OUT FILE...     FILE: CustomResourceDefinition YAML documents (Strimzi, CNPG).
                       Writes OUT/<group>/<kind>_<version>.json per served version, with the
                       same strictness kubeconform's openapi2jsonschema.py applies: objects
                       that list their properties refuse unknown ones (unless marked
                       x-kubernetes-preserve-unknown-fields), `nullable` allows null and
                       x-kubernetes-int-or-string accepts both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

DEFS_PREFIX = "/api/_definitions.json#/$defs/"
LOCAL_PREFIX = "#/$defs/"


# --------------------------------------------------------------------------- kubernetes
def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref.split("$defs/", 1)[1])
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        new = {k: _rewrite(v) for k, v in node.items()}
        ref = new.get("$ref")
        if isinstance(ref, str) and ref.startswith(DEFS_PREFIX):
            new["$ref"] = LOCAL_PREFIX + ref[len(DEFS_PREFIX) :]
        return new
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def kubernetes(src: Path, out: Path) -> int:
    definitions = json.loads((src / "_definitions.json").read_text())["$defs"]
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in sorted(src.glob("*.json")):
        if path.name in ("_definitions.json", "all.json"):
            continue
        schema = json.loads(path.read_text())
        if "x-kubernetes-group-version-kind" not in schema:
            continue  # only top-level kinds are looked up by kubeconform
        needed: set[str] = set()
        todo: set[str] = set()
        _refs(schema, todo)
        while todo:
            name = todo.pop()
            if name in needed:
                continue
            needed.add(name)
            _refs(definitions[name], todo)
        schema.pop("$id", None)
        schema = _rewrite(schema)
        schema["$defs"] = {name: definitions[name] for name in sorted(needed)}
        (out / path.name).write_text(json.dumps(schema, separators=(",", ":")))
        written += 1
    return written


# --------------------------------------------------------------------------------- CRDs
def _strict(node: Any) -> Any:
    """openapi2jsonschema's transformations, applied along the schema structure only."""
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"] if isinstance(node["type"], str) else node["type"]
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
        node["anyOf"] = [{"type": "string"}, {"type": "integer"}]
    if "properties" in node:
        node["properties"] = {k: _strict(v) for k, v in node["properties"].items()}
        if "additionalProperties" not in node and not node.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            node["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _strict(node["additionalProperties"])
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            node[key] = [_strict(v) for v in node[key]]
    if isinstance(node.get("not"), dict):
        node["not"] = _strict(node["not"])
    return node


def crds(out: Path, files: list[Path]) -> int:
    written = 0
    for file in files:
        for doc in yaml.safe_load_all(file.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            group, kind = spec["group"], spec["names"]["kind"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = _strict(version["schema"]["openAPIV3Schema"])
                props = schema.setdefault("properties", {})
                # The API server owns these; pin them so a wrong apiVersion/kind cannot pass.
                props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
                props["kind"] = {"type": "string", "enum": [kind]}
                schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
                target = out / group / f"{kind.lower()}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema, separators=(",", ":")))
                written += 1
    return written


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "kubernetes":
        n = kubernetes(Path(argv[1]), Path(argv[2]))
    elif len(argv) >= 3 and argv[0] == "crds":
        n = crds(Path(argv[1]), [Path(a) for a in argv[2:]])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if n == 0:
        print(f"k8s_schemas: no schema written for {argv}", file=sys.stderr)
        return 1
    print(f"k8s_schemas {argv[0]}: {n} schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
