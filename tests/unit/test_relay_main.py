"""``python -m teamnl_shared.relay_main --service <svc>`` reads the service's own settings
and refuses to start without a database, naming the variable to set."""

from __future__ import annotations

import pytest

from teamnl_shared import relay_main


def test_it_reads_the_services_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINL_DATABASE_URL", "postgresql://tinl@db/tinl")
    monkeypatch.setenv("TINL_RELAY_POLL_INTERVAL", "0.25")
    monkeypatch.setenv("NLIB_RELAY_POLL_INTERVAL", "9")
    monkeypatch.setenv("TEAMNL_TOPIC_PREFIX", "staging.")

    settings = relay_main.service_settings("tinl")

    assert settings.database_url == "postgresql://tinl@db/tinl"
    assert settings.relay_poll_interval == 0.25
    assert settings.service_name == "tinl"
    assert settings.topic("x") == "staging.x"
    given = relay_main.service_settings("tinl", "postgresql://other/db", "kafka:9092")
    assert (given.database_url, given.kafka_bootstrap_servers) == (
        "postgresql://other/db",
        "kafka:9092",
    )


def test_without_a_database_it_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WERKPLAATS_DATABASE_URL", raising=False)
    monkeypatch.setattr("sys.argv", ["relay_main", "--service", "werkplaats"])

    with pytest.raises(SystemExit) as exit_:
        relay_main.main()

    assert exit_.value.code == 2
    assert "WERKPLAATS_DATABASE_URL is required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--service", "globalstars"], "argument --service: invalid choice: 'globalstars'"),
        (["--service", "nlib", "--batch-size", "0"], "--batch-size: 0 is not from 1 to 2,000"),
        (["--service", "nlib", "--batch-size", "2001"], "2001 is not from 1 to 2,000"),
        (["--service", "nlib", "--batch-size", "many"], "not a whole number: 'many'"),
        (["--service", "nlib", "--metrics-port", "70000"], "70000 is not from 0 to 65,535"),
    ],
)
def test_it_refuses_what_it_cannot_relay_with_a_usage_error(
    arguments: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A service that has no outbox (the Global Stars family is TINL's), or a batch or port
    out of range, stops it before it reads any setting or connects anywhere."""
    monkeypatch.setenv("NLIB_DATABASE_URL", "postgresql://nlib@db/nlib")
    monkeypatch.setattr("sys.argv", ["relay_main", *arguments])

    with pytest.raises(SystemExit) as exit_:
        relay_main.main()

    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
