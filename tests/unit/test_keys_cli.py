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


UNREACHABLE = "postgresql://teamnl:s3cret-password@127.0.0.1:1/keys"  # nothing listens on 1


@pytest.mark.parametrize(
    "arguments",
    [
        ["create", "--service", "nlib", "--partner", "rvo-crm"],
        ["list", "--service", "nlib"],
        ["revoke", "abcd1234", "--service", "nlib"],
        ["parked", "--service", "nlib"],
    ],
)
def test_a_database_out_of_reach_is_one_line_naming_it_without_its_password(
    arguments: list[str],
) -> None:
    result = CliRunner().invoke(app, [*arguments, "--database-url", UNREACHABLE])

    said = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "cannot reach the database 127.0.0.1:1/keys" in said
    assert "s3cret" not in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "arguments",
    [["keys", "create", "--service", "nlib", "--partner", "rvo-crm"], ["keys", "list"]],
)
def test_the_suite_says_the_same_of_a_database_out_of_reach(
    arguments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAMNL_KEYS_DATABASE_URL", UNREACHABLE)
    result = CliRunner().invoke(suite_app, arguments)

    assert result.exit_code == 1, result.output
    assert "cannot reach the database 127.0.0.1:1/keys" in " ".join(result.output.split())
    assert "s3cret" not in result.output


@pytest.mark.parametrize("types", ["", ",", " , ,"])
def test_types_that_name_no_event_type_are_refused_not_taken_for_all(types: str) -> None:
    """Leaving --types out asks for every type of the service; an empty value is a slip
    (a variable that expanded to nothing), refused before anything connects."""
    for cli, arguments in (
        (
            app,
            ["create", "--service", "nlib", "--partner", "rvo-crm", "--database-url", UNREACHABLE],
        ),
        (suite_app, ["keys", "create", "--service", "nlib", "--partner", "rvo-crm"]),
    ):
        result = CliRunner().invoke(cli, [*arguments, "--types", types])

        said = " ".join(result.output.replace("│", " ").split())
        assert result.exit_code == 2, result.output
        assert "names no event type" in said


def test_a_member_cannot_be_created_in_a_database_out_of_reach_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", UNREACHABLE)
    arguments = ["members", "create", "--email", "a@example.nl", "--password-stdin"]
    result = CliRunner().invoke(suite_app, arguments, input="a-long-enough-password-42\n")

    assert result.exit_code == 1, result.output
    assert "cannot reach the database 127.0.0.1:1/keys" in " ".join(result.output.split())
    assert "s3cret" not in result.output


def test_a_rebuild_with_its_database_out_of_reach_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", UNREACHABLE)
    result = CliRunner().invoke(suite_app, ["rebuild"])

    assert result.exit_code == 1, result.output
    assert "cannot reach the database 127.0.0.1:1/keys" in " ".join(result.output.split())
    assert "s3cret" not in result.output
