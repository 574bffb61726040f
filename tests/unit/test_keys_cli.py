"""``teamnl-keys`` and ``teamnl`` take only the initiative services: a key for a service that
does not exist could never be used, and listing one found nothing without saying why."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from teamnl_shared.contract.topics import INGESTION_SERVICES, PUBLISHED_BY
from teamnl_shared.ingestion.cli import app
from teamnl_suite.cli import app as suite_app


def test_the_services_are_those_that_publish_the_initiative_families() -> None:
    assert INGESTION_SERVICES == ("nlib", "tinl", "werkplaats")
    assert set(INGESTION_SERVICES) == set(PUBLISHED_BY.values())


@pytest.mark.parametrize(
    "arguments",
    [
        ["create", "--service", "globalstars", "--partner", "rvo-crm"],
        ["list", "--service", "NLIB"],
        ["revoke", "AbCd1234", "--service", "dashboard"],
        ["parked", "--service", "iso-dashboard"],
    ],
)
def test_an_unknown_service_is_a_usage_error_naming_the_choices(arguments: list[str]) -> None:
    # a database is named, so only the service can be what is refused (nothing connects)
    result = CliRunner().invoke(app, [*arguments, "--database-url", "postgresql://x@nowhere/x"])

    said = " ".join(result.output.replace("│", " ").split())  # out of Rich's error box
    assert result.exit_code == 2
    assert "Invalid value for '--service'" in said
    assert "is not one of 'nlib', 'tinl', 'werkplaats'." in said


@pytest.mark.parametrize(
    "arguments",
    [
        ["keys", "create", "--service", "globalstars", "--partner", "rvo-crm"],
        ["keys", "list", "--service", "dashboard"],
        ["keys", "revoke", "AbCd1234", "--service", "NLIB"],
        ["replay", "{file}", "--service", "nlibx", "--key", "tnl_x"],
    ],
)
def test_the_suite_refuses_an_unknown_service_the_same_way(
    arguments: list[str], tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    result = CliRunner().invoke(suite_app, [a.format(file=events) for a in arguments])

    said = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2
    assert "is not one of 'nlib', 'tinl', 'werkplaats'." in said
