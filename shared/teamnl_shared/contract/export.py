"""Generate the published contract from the models: one JSON Schema per event type and an
AsyncAPI 3.0.0 document.

    python -m teamnl_shared.contract.export [--check] [--out DOCS_DIR]

`--check` writes nothing: it exits 1 and lists the files that are stale, missing or extra.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from teamnl_shared.contract.registry import (
    CATALOGUE,
    FAMILIES,
    OPS_FAMILY,
    EventSpec,
    specs_for_family,
)
from teamnl_shared.contract.topics import OPS_PUBLISHER, PUBLISHED_BY, TOPICS
from teamnl_shared.contract.types import TIME_DESCRIPTION

DEFAULT_DOCS_DIR = Path(__file__).resolve().parents[3] / "docs"
SCHEMAS_DIR = "schemas"
ASYNCAPI_FILE = "asyncapi.yaml"
SCHEMA_ID_PREFIX = "urn:nl.teamnl:schema:"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
HEADERS_SCHEMA = "CloudEventsKafkaHeaders"

_KAFKA_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 Kafka binary content mode headers, plus the W3C trace context",
    "required": [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
        "ce_time",
        "content-type",
    ],
    "properties": {
        "ce_specversion": {"const": "1.0"},
        "ce_id": {"type": "string", "minLength": 1, "description": "unique per event"},
        "ce_source": {
            "type": "string",
            "pattern": "^/partners/[a-z0-9-]+$",
            "description": "the partner bound to the API key",
        },
        "ce_type": {"type": "string", "description": "the event type, version included"},
        "ce_subject": {"type": "string", "description": "aggregate id, also the Kafka key"},
        "ce_time": {"type": "string", "format": "date-time", "description": TIME_DESCRIPTION},
        "content-type": {"const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context"},
        "teamnl_accepted_at": {
            "type": "string",
            "format": "date-time",
            "description": "when teamnl accepted the event (end-to-end latency starts here)",
        },
    },
}


def schema_id(event_type: str) -> str:
    return SCHEMA_ID_PREFIX + event_type


def event_schema(spec: EventSpec) -> dict[str, Any]:
    """The standalone JSON Schema of one event type's data."""
    schema = spec.model.model_json_schema(mode="validation")
    return {
        **schema,
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(spec.type),
        "title": spec.type,
        "description": spec.summary,
        "examples": [spec.example],
    }


def _component_schemas() -> dict[str, Any]:
    """All data schemas keyed by event type, sharing one set of definitions (enums)."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (spec.model, "validation") for spec in CATALOGUE.values()
    ]
    keyed, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    for spec in CATALOGUE.values():
        ref = keyed[(spec.model, "validation")]["$ref"].rsplit("/", 1)[-1]
        schemas[spec.type] = {**schemas.pop(ref), "title": spec.type, "examples": [spec.example]}
    return {**schemas, HEADERS_SCHEMA: _KAFKA_HEADERS}


def _message(spec: EventSpec) -> dict[str, Any]:
    return {
        "name": spec.type,
        "title": spec.model.__name__,
        "summary": spec.summary,
        "contentType": "application/json",
        "headers": {
            "allOf": [
                {"$ref": f"#/components/schemas/{HEADERS_SCHEMA}"},
                {"type": "object", "properties": {"ce_type": {"const": spec.type}}},
            ]
        },
        "payload": {"$ref": f"#/components/schemas/{spec.type}"},
        "examples": [{"name": "example", "payload": spec.example}],
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"the aggregate id: {spec.aggregate}"},
                "bindingVersion": "0.5.0",
            }
        },
    }


def _channel(family: str) -> dict[str, Any]:
    return {
        "address": TOPICS[family],
        "description": f"every {family} event, keyed by aggregate id",
        "messages": {
            spec.type: {"$ref": f"#/components/messages/{spec.type}"}
            for spec in specs_for_family(family)
        },
    }


_CHANNELS = (*FAMILIES, OPS_FAMILY)


def _publisher(family: str) -> str:
    return OPS_PUBLISHER if family == OPS_FAMILY else PUBLISHED_BY[family]


def _operation(family: str) -> dict[str, Any]:
    return {
        "action": "send",
        "summary": f"the {_publisher(family)} service publishes {family} events",
        "channel": {"$ref": f"#/channels/{family}"},
        "messages": [
            {"$ref": f"#/channels/{family}/messages/{spec.type}"}
            for spec in specs_for_family(family)
        ],
    }


def asyncapi_document() -> dict[str, Any]:
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "teamnl events",
            "version": "1.0.0",
            "description": "The v1 event catalogue of Team NL (generated from the models).",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:19092", "protocol": "kafka", "description": "dev"}
        },
        "channels": {family: _channel(family) for family in _CHANNELS},
        "operations": {
            f"{PUBLISHED_BY.get(family, 'ingestion')}.send.{family}": _operation(family)
            for family in _CHANNELS
        },
        "components": {
            "schemas": _component_schemas(),
            "messages": {spec.type: _message(spec) for spec in CATALOGUE.values()},
        },
    }


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml(document: dict[str, Any]) -> str:
    unshared = json.loads(json.dumps(document))  # shared objects would become YAML aliases
    text: str = yaml.safe_dump(unshared, sort_keys=True, allow_unicode=True, width=100)
    return text


def render() -> dict[str, str]:
    """Every generated file, by path relative to the docs folder."""
    files = {
        f"{SCHEMAS_DIR}/{spec.type}.json": _json(event_schema(spec)) for spec in CATALOGUE.values()
    }
    files[ASYNCAPI_FILE] = _yaml(asyncapi_document())
    return files


def _existing(docs_dir: Path) -> set[str]:
    schemas = docs_dir / SCHEMAS_DIR
    found = {f"{SCHEMAS_DIR}/{path.name}" for path in schemas.glob("*.json")}
    return found | ({ASYNCAPI_FILE} if (docs_dir / ASYNCAPI_FILE).exists() else set())


def check(docs_dir: Path) -> list[str]:
    """Problems between the generated contract and the files in `docs_dir` (empty: in sync)."""
    wanted = render()
    problems = [f"extra: {name}" for name in sorted(_existing(docs_dir) - wanted.keys())]
    for name, text in sorted(wanted.items()):
        path = docs_dir / name
        if not path.exists():
            problems.append(f"missing: {name}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"stale: {name}")
    return problems


def write(docs_dir: Path) -> list[Path]:
    """Write every generated file and delete schema files no longer generated."""
    wanted = render()
    for name in _existing(docs_dir) - wanted.keys():
        (docs_dir / name).unlink()
    written = []
    for name, text in sorted(wanted.items()):
        path = docs_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    parser.add_argument("--out", type=Path, default=DEFAULT_DOCS_DIR, help="the docs folder")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    print(f"wrote {len(write(args.out))} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
