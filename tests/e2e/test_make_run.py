"""``make run`` headless: ``teamnl up`` starts the whole suite, seeds the letter's facts
through the public HTTP APIs, and the dashboard's JSON API shows them (also after
``teamnl rebuild``); ``teamnl down`` leaves no process behind.

The run is isolated from other tests and from a developer's running stack: its own topic
prefix, its own databases, free ports and its own state folder, all through the environment
the services read anyway.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import topic_prefix
from teamnl_suite import pidfile
from teamnl_suite.infra import Infrastructure, with_database
from teamnl_suite.infra.postgres import drop_databases

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SERVICES = {
    "nlib": "NLIB_",
    "tinl": "TINL_",
    "werkplaats": "WERKPLAATS_",
    "dashboard": "DASHBOARD_",
}
TEAMNL = str(Path(sys.executable).parent / "teamnl")
SEEDED_WITHIN = 120.0  # seconds for the dashboard's consumer to project the seed
LETTERS_DATE = "2018-12-21"  # the seed's latest event: the India mission's follow-up
CITIES_WITH_ACTIVITY = {
    "Warsaw",
    "Ho Chi Minh City",
    "Guangzhou/Pearl River Delta",
    "Bogotá",
    "Mumbai",
    "New York City",
    "Chicago",
}  # NLIB's outgoing missions and TINL's activities abroad; Munich's was incoming


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def poll_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy result of ``check()`` within ``timeout`` seconds (a readiness poll)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)  # poll interval
    raise AssertionError(f"{what} not seen within {timeout:.0f} s (last: {last!r})")


@pytest.fixture
def suite_env(infra: Infrastructure, tmp_path: Path) -> Iterator[dict[str, str]]:
    run_id = uuid.uuid4().hex[:10]
    databases = {name: f"e2e_{run_id}_{name}" for name in SERVICES}
    env = {
        **os.environ,
        "TEAMNL_TOPIC_PREFIX": topic_prefix(),
        "TEAMNL_SUITE_STATE_DIR": str(tmp_path / "suite"),
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "COLUMNS": "200",
    }
    env.pop("TEAMNL_DEMO_PASSWORD", None)
    for (name, prefix), port in zip(SERVICES.items(), free_ports(len(SERVICES)), strict=True):
        env[f"{prefix}PORT"] = str(port)
        env[f"{prefix}DATABASE_URL"] = infra.database_url(databases[name])
    try:
        yield env
    finally:
        subprocess.run([TEAMNL, "down"], env=env, capture_output=True, timeout=120, check=False)
        asyncio.run(
            drop_databases(
                with_database(infra.admin_database_url(), "postgres"), list(databases.values())
            )
        )


def teamnl(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``teamnl`` like ``make`` does; its stdout and stderr together."""
    result = subprocess.run(
        [TEAMNL, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"teamnl {' '.join(args)} exited {result.returncode}:\n{output}"
    return output


def logged_in(base_url: str, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=10)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, page.text[:500]
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token.group(1), "next": "/"},
    )
    assert response.status_code == 303, response.text[:500]
    return client


def demo_key_accepted(base_url: str, key: str) -> bool:
    event = {
        "specversion": "1.0",
        "id": "e2e-demo-1",
        "source": "/partners/demo-nlib",
        "type": "nl.teamnl.nlib.company.supported.v1",
        "data": {
            "company_id": "kvk-00000001",
            "company": "Demo B.V.",
            "kind": "export_advice",
            "country": "PL",
            "supported_on": "2019-01-17",
        },
    }
    response = httpx.post(
        f"{base_url}/v1/events",
        json=event,
        timeout=10,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"},
    )
    return response.status_code == 202


def seeded(dashboard: httpx.Client, **reading: str) -> dict[str, Any] | None:
    """The dashboard's views once the whole seed is projected, else None: as a member
    opening it sees them, without choosing a period or an as-of date (or in `reading`)."""
    paths = {
        "overview": "/api/v1/overview",
        "cities": "/api/v1/cities",
        "tinl": "/api/v1/initiatives/tinl",
        "globalstars": "/api/v1/initiatives/globalstars",
        "werkplaats": "/api/v1/initiatives/werkplaats",
        "budget": "/api/v1/budget",
        "findings": "/api/v1/findings",
    }
    views = {name: dashboard.get(path, params=reading).json() for name, path in paths.items()}
    complete = (
        views["overview"]["as_of"] == LETTERS_DATE
        and views["cities"]["with_programme"] == 38
        and views["globalstars"]["calls_closed"] == 3
        and views["globalstars"]["dutch_proposals"] == 32
        and views["werkplaats"]["projects"] == 8
        and all(row["spent_cents"] > 0 for row in views["budget"])
    )
    return views if complete else None


def test_teamnl_up_seeds_the_letters_facts_and_teamnl_down_stops_everything(
    suite_env: dict[str, str],
) -> None:
    out = teamnl(suite_env, "up")

    password = re.search(r"dashboard login\s+demo@iso\.nl\s+password: (\S+)", out)
    assert password is not None, out
    demo_keys = dict(re.findall(r"(\w+) key \(demo-\w+\)\s+(tnl_\S+)", out))
    assert sorted(demo_keys) == ["nlib", "tinl", "werkplaats"], out
    state = Path(suite_env["TEAMNL_SUITE_STATE_DIR"])
    pids = [pidfile.read(state / "supervisor.pid")] + [
        pidfile.read(state / "pids" / f"{name}.pid") for name in SERVICES
    ]
    assert all(pid is not None for pid in pids), pids

    dashboard = logged_in(
        f"http://127.0.0.1:{suite_env['DASHBOARD_PORT']}", "demo@iso.nl", password.group(1)
    )
    views = poll_until(lambda: seeded(dashboard), SEEDED_WITHIN, "the projected seed")

    the_letters_2018_without_a_false_finding(views)
    cities = views["cities"]["cities"]
    assert Counter(c["programme"]["tier"] for c in cities if c["programme"]) == {
        "pilot": 6,
        "golden": 19,
        "silver": 13,
    }
    assert views["werkplaats"]["projects"] == 8 and views["werkplaats"]["sdgs_covered"] > 0
    calls = views["globalstars"]["calls"]
    assert sorted(c["country"] for c in calls) == ["BR", "IN", "TW"]
    assert sum(c["dutch_proposals_reported"] for c in calls) == 32
    assert all(c["within_target"] and 4 <= c["lead_time_months"] <= 5 for c in calls)
    allocation = {row["family"]: row["allocation_cents"] for row in views["budget"]}
    assert allocation["nlib"] == 600_000_000  # EUR 6 M NLIB
    assert (
        allocation["tinl"] + allocation["werkplaats"] + allocation["globalstars"] == 400_000_000
    )  # EUR 4 M public
    assert allocation["globalstars"] == 100_000_000  # EUR 1 M of it for Global Stars

    assert "already running" in teamnl(suite_env, "up")  # idempotent
    again = teamnl(suite_env, "seed")  # a replay: answered with the original receipts
    assert re.search(r"seed nlib\s+0 accepted, 70 replayed, 0 failed", again), again
    nlib = f"http://127.0.0.1:{suite_env['NLIB_PORT']}"
    assert demo_key_accepted(nlib, demo_keys["nlib"])

    rebuilt = teamnl(suite_env, "rebuild")  # the projections again, from the topics
    assert "rebuilt" in rebuilt, rebuilt
    # the demo key's event is of today: the letter's reading is now asked for by name
    assert seeded(dashboard, period="2018", as_of=LETTERS_DATE) is not None

    teamnl(suite_env, "down")
    assert not [pid for pid in pids if pid is not None and pidfile.alive(pid)]
    assert not (state / "supervisor.pid").exists()
    assert not list((state / "pids").glob("*.pid"))


def the_letters_2018_without_a_false_finding(views: dict[str, Any]) -> None:
    """What a member sees after ``make run``: 2018 as of the letter's date, the letter's
    numbers, and no finding the letter would contradict."""
    overview = views["overview"]
    assert (overview["period"], overview["as_of"]) == ("2018", LETTERS_DATE)
    assert overview["illustrative"] is True  # the seed's own figures are marked
    spending = {i["family"]: i["budget"] for i in overview["initiatives"]}
    assert all(0 < b["spent_cents"] <= b["allocation_cents"] for b in spending.values())
    assert {row["year"] for row in views["budget"]} == {2018}
    assert views["findings"] == [] and overview["findings_open"] == {}
    assert overview["score"]["joint_actions"] > 0 and overview["score"]["score"] > 0
    cities = views["cities"]
    assert (cities["stated"], cities["total"]) == (40, 38)
    assert set(cities["covered_cities"]) == CITIES_WITH_ACTIVITY
    assert views["tinl"]["partners_taking_part"] == 8
    [portfolio] = views["werkplaats"]["portfolio"]
    assert (portfolio["year"], portfolio["portfolio"], portfolio["target"]) == (2018, 8, None)
    assert views["werkplaats"]["next_target"] == {"year": 2019, "target": 20}
    stars = views["globalstars"]
    assert (stars["calls_closed"], stars["dutch_proposals"]) == (3, 32)
