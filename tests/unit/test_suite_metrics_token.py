"""`make run` gives every service one metrics token: TEAMNL_METRICS_TOKEN when set, else one
generated once and kept, readable by its owner only, in the suite's state folder."""

from __future__ import annotations

import stat
from pathlib import Path

from teamnl_suite.config import SERVICES, Endpoint, SuiteConfig

GIVEN = "g" * 40


def suite(tmp_path: Path, env: dict[str, str]) -> SuiteConfig:
    endpoints = {
        s.name: Endpoint(s, "127.0.0.1", 1, "postgresql://x@127.0.0.1/db") for s in SERVICES
    }
    return SuiteConfig(tmp_path / "state", "127.0.0.1:1", endpoints, env)


def test_every_service_is_given_one_token_kept_for_the_next_start(tmp_path: Path) -> None:
    tokens = {
        s.name: suite(tmp_path, {}).service_env(s.name)["TEAMNL_METRICS_TOKEN"] for s in SERVICES
    }

    [token] = set(tokens.values())
    assert len(token) >= 32
    kept = suite(tmp_path, {}).metrics_token_file()
    assert kept.read_text() == token
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert suite(tmp_path, {}).service_env("nlib")["TEAMNL_METRICS_TOKEN"] == token


def test_a_token_in_the_environment_is_the_one_given(tmp_path: Path) -> None:
    config = suite(tmp_path, {"TEAMNL_METRICS_TOKEN": GIVEN})

    assert {config.service_env(s.name)["TEAMNL_METRICS_TOKEN"] for s in SERVICES} == {GIVEN}
    assert not config.metrics_token_file().exists()
