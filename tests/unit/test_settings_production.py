"""Production refuses the secrets that ship as demo defaults: the code's own and those
docker-compose.yml falls back to when the environment sets none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from teamnl_dashboard.settings import DEFAULT_SESSION_SECRET, DashboardSettings
from teamnl_shared.settings import ServiceSettings, is_placeholder

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
DATABASE = "postgresql://teamnl@127.0.0.1/teamnl"
SECRET = "Vq3n9xT2pL7sK0dR4mW8bY1cF6hJ5gZa"  # 32 characters, no placeholder
TOKEN = "b7Yc2Qe9Lm4Rt8Wx1Zp6Kd3Hs5Nf0Gj2"


def compose_default(variable: str) -> str:
    """The value docker-compose.yml gives `variable` when the environment has none."""
    [default] = re.findall(rf"\${{{variable}:-([^}}]+)}}", COMPOSE.read_text())
    return default


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEAMNL_ENVIRONMENT", "DASHBOARD_SESSION_SECRET", "TEAMNL_METRICS_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def dashboard(**values: object) -> DashboardSettings:
    return DashboardSettings(
        environment="production", database_url=DATABASE, secure_cookies=True, **values
    )


@pytest.mark.parametrize(
    "secret",
    [DEFAULT_SESSION_SECRET, compose_default("DASHBOARD_SESSION_SECRET"), "s" * 31],
    ids=["the code's default", "docker-compose's default", "31 characters"],
)
def test_production_refuses_a_session_secret_that_is_a_default_or_short(secret: str) -> None:
    with pytest.raises(ValidationError, match="DASHBOARD_SESSION_SECRET must be set"):
        dashboard(session_secret=secret)


def test_production_refuses_docker_composes_metrics_token() -> None:
    token = compose_default("TEAMNL_METRICS_TOKEN")
    with pytest.raises(ValidationError, match="TEAMNL_METRICS_TOKEN is a placeholder"):
        dashboard(session_secret=SECRET, metrics_token=token)
    with pytest.raises(ValidationError, match="TEAMNL_METRICS_TOKEN is a placeholder"):
        ServiceSettings(environment="production", database_url=DATABASE, metrics_token=token)


def test_production_takes_secrets_of_its_own_and_development_the_defaults() -> None:
    settings = dashboard(session_secret=SECRET, metrics_token=TOKEN)
    assert settings.scrape_token == TOKEN
    demo = DashboardSettings(
        database_url=DATABASE,
        session_secret=compose_default("DASHBOARD_SESSION_SECRET"),
        metrics_token=compose_default("TEAMNL_METRICS_TOKEN"),
    )
    assert demo.environment == "development"


@pytest.mark.parametrize(
    ("secret", "placeholder"),
    [("local-only-CHANGE-ME-123", True), ("ChangeMe", True), ("change_me", True), (SECRET, False)],
)
def test_a_placeholder_says_so_in_any_case(secret: str, placeholder: bool) -> None:
    assert is_placeholder(secret) is placeholder
