"""The configuration reference, generated from the settings classes themselves.

``python -m teamnl_suite.reference [--check]`` writes ``docs/CONFIGURATION.md``:
every environment variable each service reads, its default and what it means. ``--check``
fails when the file in the repository no longer matches the code (``make test`` runs it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"

SERVICES = (
    ("NLinBusiness (`teamnl-nlib`)", "teamnl_nlib.settings", "NlibSettings"),
    (
        "Trade & Innovate NL and Global Stars (`teamnl-tinl`)",
        "teamnl_tinl.settings",
        "TinlSettings",
    ),
    ("De Werkplaats (`teamnl-werkplaats`)", "teamnl_werkplaats.settings", "WerkplaatsSettings"),
    ("ISO NL dashboard (`teamnl-dashboard`)", "teamnl_dashboard.settings", "DashboardSettings"),
)

HEADER = """\
# Configuration reference

Generated from the settings classes by `python -m teamnl_suite.reference`; `make test`
fails when this file is out of date. Every service reads its own prefix; Kafka, topic and
environment settings are shared and carry no service prefix. Outside `development` and `test`
(`TEAMNL_ENVIRONMENT=production`) unsafe values (a default session secret, insecure cookies)
are refused at start-up. OpenTelemetry reads the standard `OTEL_*` variables
(`OTEL_EXPORTER_OTLP_ENDPOINT` switches OTLP export on; nothing is exported without it).

Local infrastructure (`teamnl-infra`): see the README's table.
"""


def _env_names(settings: type[BaseSettings], name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return " / ".join(f"`{c}`" for c in choices if isinstance(c, str) and c.isupper())
    prefix = settings.model_config.get("env_prefix", "")
    return f"`{prefix}{name.upper()}`"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value: Any = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if value == "":
        return "(empty)"
    text = json.dumps(value, default=str, sort_keys=True)
    return f"`{text}`"


def _description(settings: type[BaseModel], name: str) -> str:
    """The field's description, or the one a base class gave it before a subclass override."""
    for cls in settings.__mro__:
        field = getattr(cls, "model_fields", {}).get(name)
        if field is not None and field.description:
            return str(field.description).replace("|", "\\|")
    return ""


def _rows(settings: type[BaseSettings]) -> list[str]:
    rows = []
    for name, field in settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(_nested_rows(settings, name, annotation))
            continue
        rows.append(
            f"| {_env_names(settings, name, field)} | {_default(field)} "
            f"| {_description(settings, name)} |"
        )
    return rows


def _nested_rows(settings: type[BaseSettings], name: str, model: type[BaseModel]) -> list[str]:
    prefix = settings.model_config.get("env_prefix", "")
    delimiter = settings.model_config.get("env_nested_delimiter") or "__"
    return [
        f"| `{prefix}{name.upper()}{delimiter}{inner.upper()}` | {_default(field)} "
        f"| {_description(model, inner)} |"
        for inner, field in model.model_fields.items()
    ]


def render() -> str:
    parts = [HEADER]
    for title, module, cls in SERVICES:
        settings = getattr(importlib.import_module(module), cls)
        parts.append(f"\n## {title}\n\n| variable | default | meaning |\n|---|---|---|")
        parts.extend(_rows(settings))
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
