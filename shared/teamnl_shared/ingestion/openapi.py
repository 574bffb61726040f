"""The OpenAPI document of a service: every event type of its families, with examples taken
from the catalogue (``EventSpec.example``), and the AsyncAPI part for its topics."""

from __future__ import annotations

import json
from copy import deepcopy
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from teamnl_shared.contract.envelope import CLOUDEVENTS_BATCH_JSON, CLOUDEVENTS_JSON, JSON
from teamnl_shared.contract.export import HEADERS_SCHEMA, asyncapi_document
from teamnl_shared.contract.registry import EventSpec, spec_for
from teamnl_shared.contract.topics import TOPICS
from teamnl_shared.contract.types import TIME_DESCRIPTION
from teamnl_shared.problem import problem_schemas

from .service import ServiceDefinition
from .settings import IngestionSettings

EXAMPLE_SOURCE = "/partners/example-partner"
_REF = "#/components/schemas/"


def _structured_name(event_type: str) -> str:
    return f"CloudEvent.{event_type}"


def structured_example(spec: EventSpec) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{spec.example[spec.aggregate]}-0001",
        "source": EXAMPLE_SOURCE,
        "type": spec.type,
        "subject": str(spec.example[spec.aggregate]),
        "time": "2019-06-01T09:30:00Z",
        "datacontenttype": JSON,
        "data": deepcopy(spec.example),
    }


def _structured_schema(spec: EventSpec) -> dict[str, Any]:
    return {
        "type": "object",
        "title": spec.type,
        "description": f"{spec.summary} (CloudEvents structured mode)",
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "description": "unique per source"},
            "source": {
                "type": "string",
                "minLength": 1,
                "description": "/partners/<partner slug>, bound to the API key",
            },
            "type": {"const": spec.type},
            "subject": {
                "type": "string",
                "description": f"optional; when given it must equal data.{spec.aggregate}",
            },
            "time": {"type": "string", "format": "date-time", "description": TIME_DESCRIPTION},
            "datacontenttype": {"const": JSON},
            "data": {"$ref": _REF + spec.type},
        },
    }


def _binary_header_parameters() -> list[dict[str, Any]]:
    names = {
        "ce-specversion": "binary mode: 1.0",
        "ce-id": "binary mode: the event id",
        "ce-source": "binary mode: /partners/<partner slug>",
        "ce-type": "binary mode: the event type",
        "ce-subject": "binary mode: the aggregate id (optional)",
        "ce-time": f"binary mode: {TIME_DESCRIPTION} (optional)",
    }
    return [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in names.items()
    ]


def single_event_openapi(service: ServiceDefinition) -> dict[str, Any]:
    specs = [spec_for(t) for t in service.event_types]
    return {
        "parameters": _binary_header_parameters(),
        "requestBody": {
            "required": True,
            "content": {
                CLOUDEVENTS_JSON: {
                    "schema": {"anyOf": [{"$ref": _REF + _structured_name(s.type)} for s in specs]},
                    "examples": {
                        s.type: {"summary": s.summary, "value": structured_example(s)}
                        for s in specs
                    },
                },
                JSON: {
                    "schema": {"anyOf": [{"$ref": _REF + s.type} for s in specs]},
                    "examples": {
                        s.type: {
                            "summary": f"{s.summary} (binary mode: send the ce-*"
                            f" headers, ce-type: {s.type})",
                            "value": deepcopy(s.example),
                        }
                        for s in specs
                    },
                },
            },
        },
    }


def batch_openapi(service: ServiceDefinition, max_events: int) -> dict[str, Any]:
    specs = [spec_for(t) for t in service.event_types]
    return {
        "requestBody": {
            "required": True,
            "content": {
                CLOUDEVENTS_BATCH_JSON: {
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": max_events,
                        "items": {
                            "anyOf": [{"$ref": _REF + _structured_name(s.type)} for s in specs]
                        },
                    },
                    "examples": {
                        "every type": {
                            "summary": "one event of each type",
                            "value": [structured_example(s) for s in specs],
                        }
                    },
                },
            },
        },
    }


def _component_schemas(service: ServiceDefinition) -> dict[str, Any]:
    schemas: dict[str, Any] = dict(asyncapi_document()["components"]["schemas"])
    schemas.pop(HEADERS_SCHEMA, None)
    for event_type in service.event_types:
        schemas[_structured_name(event_type)] = _structured_schema(spec_for(event_type))
    schemas.update(problem_schemas())
    return schemas


def install_openapi(app: FastAPI, service: ServiceDefinition) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(_component_schemas(service))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def service_asyncapi(service: ServiceDefinition, settings: IngestionSettings) -> str:
    """The AsyncAPI document reduced to the channels this service publishes, real topics."""
    document = asyncapi_document()
    families = set(service.families)
    document["channels"] = {
        family: {**channel, "address": settings.topic(TOPICS[family])}
        for family, channel in document["channels"].items()
        if family in families
    }
    document["operations"] = {
        name: operation
        for name, operation in document["operations"].items()
        if operation["channel"]["$ref"].rsplit("/", 1)[-1] in families
    }
    types = set(service.event_types)
    document["components"]["messages"] = {
        name: message
        for name, message in document["components"]["messages"].items()
        if name in types
    }
    document["info"]["title"] = f"teamnl {service.name} events"
    text: str = yaml.safe_dump(_unshared(document), sort_keys=True, allow_unicode=True, width=100)
    return text


def _unshared(document: dict[str, Any]) -> Any:
    """A copy without shared sub-objects, which YAML would write as aliases."""
    return json.loads(json.dumps(document))
