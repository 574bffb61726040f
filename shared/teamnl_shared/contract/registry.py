"""The v1 catalogue: every event type, its data model, its aggregate and an example.

Models declare themselves with `@event(...)` in their family module; this module only
collects them, so a type name is written exactly once.
"""

from __future__ import annotations

import builtins
from copy import deepcopy
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, get_args

from teamnl_shared.contract import globalstars, nlib, ops, tinl, werkplaats
from teamnl_shared.contract.types import EventData, EventMeta

Family = Literal["nlib", "tinl", "globalstars", "werkplaats"]
FAMILIES: tuple[Family, ...] = get_args(Family)
"""The initiative families (what the dashboard reports on)."""
OPS_FAMILY = "ops"
"""Operations events (ops.py): every ingestion service reports about its partners; no
partner key may send them, and they are no initiative's facts."""
_FAMILY_MODULES: tuple[ModuleType, ...] = (nlib, tinl, globalstars, werkplaats, ops)


@dataclass(frozen=True)
class EventSpec:
    type: str  # "nl.teamnl.nlib.mission.held.v1"
    family: str  # "nlib" | "tinl" | "globalstars" | "werkplaats"
    model: builtins.type[EventData]  # `type` is a field name here
    aggregate: str  # data field holding the aggregate id = Kafka key = CloudEvents subject
    summary: str  # one sentence for docs
    example: dict[str, Any]  # a valid example data payload


class UnknownEventType(KeyError):
    """The event type is not in the v1 catalogue."""


def _declared_models(module: ModuleType) -> list[type[EventData]]:
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, EventData)
        and value.__module__ == module.__name__
        and "event_meta" in vars(value)
    ]


def _family_of(event_type: str) -> str:
    prefix, _, family_and_rest = event_type.partition("nl.teamnl.")
    family = family_and_rest.split(".", 1)[0]
    if prefix or family not in (*FAMILIES, OPS_FAMILY) or not event_type.endswith(".v1"):
        raise ValueError(f"malformed event type {event_type!r}")
    return family


def _spec(model: type[EventData], meta: EventMeta) -> EventSpec:
    if meta.aggregate not in model.model_fields:
        raise ValueError(f"{meta.type}: aggregate field {meta.aggregate!r} is not a field")
    summary = (model.__doc__ or "").strip().splitlines()[0]
    family = _family_of(meta.type)
    return EventSpec(meta.type, family, model, meta.aggregate, summary, deepcopy(meta.example))


def _build_catalogue() -> dict[str, EventSpec]:
    catalogue: dict[str, EventSpec] = {}
    for module in _FAMILY_MODULES:
        for model in _declared_models(module):
            assert model.event_meta is not None
            spec = _spec(model, model.event_meta)
            if spec.type in catalogue:
                raise ValueError(f"event type {spec.type!r} declared twice")
            catalogue[spec.type] = spec
    return dict(sorted(catalogue.items()))


CATALOGUE: dict[str, EventSpec] = _build_catalogue()


def spec_for(event_type: str) -> EventSpec:
    try:
        return CATALOGUE[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def specs_for_family(family: str) -> list[EventSpec]:
    return [spec for spec in CATALOGUE.values() if spec.family == family]


def parse_data(event_type: str, data: Any) -> EventData:
    """Validate a data payload (a dict, or JSON as str/bytes); raises pydantic ValidationError."""
    model = spec_for(event_type).model
    if isinstance(data, str | bytes | bytearray):
        return model.model_validate_json(data)
    return model.model_validate(data)


def aggregate_id(event_type: str, data: EventData) -> str:
    spec = spec_for(event_type)
    if not isinstance(data, spec.model):
        raise TypeError(f"{event_type} carries {spec.model.__name__}, not {type(data).__name__}")
    return str(getattr(data, spec.aggregate))
