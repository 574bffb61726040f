"""The overview's data is kept between two changes of the projections (issue 11).

Proves, on a real dashboard (uvicorn, consumer, PostgreSQL LISTEN/NOTIFY): a second request
for the overview page or its JSON runs none of the overview's queries (``queries.overview``,
which both build on, is counted); after an event is projected and its NOTIFY has reached the
live hub, the next request shows the new figure although the cache's max age is an hour; with
``overview_cache_seconds=0`` every request runs the queries again.

Rules and the live hub also announce changes of their own (a finding raised at start-up);
each one empties the cache, so a second request is judged only when no change reached the
hub since the first.

The page's content is kept as HTML too, rendered once per language and role: each session
still finds its own CSRF token in the forms of that content, and a member without the
secretariat's role finds none of its actions.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dashboard_harness import (
    Dashboard,
    announcement,
    dashboard_settings,
    make_event,
    running_dashboard,
    signed_in,
)
from support import eventually
from teamnl_dashboard import queries
from teamnl_dashboard.web import pages, templating

pytestmark = pytest.mark.integration

PAGE, API = "/", "/api/v1/overview"
AN_HOUR = 3600.0  # never reached by a test: only a change empties the cache
PAIRS_TRIED = 20


class OverviewRuns:
    """Counts the runs of ``queries.overview`` (the page's and the API's dozen queries)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        overview = queries.overview

        async def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.count += 1
            return await overview(*args, **kwargs)

        monkeypatch.setattr(queries, "overview", counted)


class HubChanges:
    """Counts what the live hub tells its watchers (each one empties the cache)."""

    def __init__(self, dash: Dashboard) -> None:
        self.count = 0
        dash.app.state.hub.watch(self.seen)

    def seen(self) -> None:
        self.count += 1


async def listening(dash: Dashboard) -> None:
    async def hub_listens() -> bool:
        return bool(dash.app.state.hub.listening.is_set())

    await eventually(hub_listens)


async def runs_of_a_second_request(
    dash: Dashboard, path: str, runs: OverviewRuns, changes: HubChanges
) -> int:
    """The overview's query runs of a request that follows another with no change between."""
    for _ in range(PAIRS_TRIED):
        changes_before = changes.count  # a change during the first request also empties it
        await get_ok(dash, path)
        runs_before = runs.count
        await get_ok(dash, path)
        if changes.count == changes_before:
            return runs.count - runs_before
    raise AssertionError(f"the hub never stayed quiet for two requests of {path}")


async def get_ok(dash: Dashboard, path: str) -> str:
    response = await dash.member.get(path)
    assert response.status_code == 200, response.text
    return response.text


def nlib_spent(event_id: str) -> Any:
    this_year = datetime.now(UTC).year
    return make_event(
        "nl.teamnl.nlib.budget.spent.v1", spend_id=event_id, amount_cents=500_00, year=this_year
    )


def nlib_events_on_the_page(html: str) -> int:
    card = re.search(r'data-initiative="nlib".*?data-count="events">(\d+)<', html, re.S)
    assert card is not None, html
    return int(card.group(1))


async def projected_and_announced(dash: Dashboard, event: Any) -> None:
    """Publish `event` and wait for the NOTIFY of the batch that projected it."""
    async with dash.app.state.hub.subscribe() as announced:
        await dash.publish(event)
        await announcement(announced, "event")


@contextlib.asynccontextmanager
async def one_event_projected(
    database_url: str, kafka_bootstrap: str, cache_seconds: float
) -> AsyncIterator[tuple[Dashboard, HubChanges]]:
    """A dashboard with one NLIB event projected and its live hub listening."""
    settings = dashboard_settings(
        database_url, kafka_bootstrap, overview_cache_seconds=cache_seconds
    )
    async with running_dashboard(settings) as dash:
        changes = HubChanges(dash)
        await dash.publish(nlib_spent("first"))
        await dash.wait_applied(1)
        await listening(dash)
        yield dash, changes


async def test_a_second_request_runs_no_query_and_a_change_shows_at_once(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = OverviewRuns(monkeypatch)
    async with one_event_projected(database_url, kafka_bootstrap, AN_HOUR) as (dash, changes):
        assert await runs_of_a_second_request(dash, PAGE, runs, changes) == 0
        assert await runs_of_a_second_request(dash, API, runs, changes) == 0
        assert nlib_events_on_the_page(await get_ok(dash, PAGE)) == 1

        await projected_and_announced(dash, nlib_spent("second"))
        assert nlib_events_on_the_page(await get_ok(dash, PAGE)) == 2
        overview = await dash.get(API)
        assert {i["family"]: i["events"] for i in overview["initiatives"]}["nlib"] == 2


async def test_with_no_max_age_nothing_is_kept(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = OverviewRuns(monkeypatch)
    async with one_event_projected(database_url, kafka_bootstrap, 0) as (dash, changes):
        assert await runs_of_a_second_request(dash, PAGE, runs, changes) == 1
        assert await runs_of_a_second_request(dash, API, runs, changes) == 1


FINDING_FORM_TOKEN = re.compile(
    r'<form method="post" action="/findings/\d+/(?:acknowledge|resolve)"[^>]*>\s*'
    r'<input type="hidden" name="csrf_token" value="([^"]+)">'
)


class ContentRenders:
    """Counts the renderings of the overview's shared content."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        shared_part = pages.shared_part

        def counted(*args: Any, **kwargs: Any) -> str:
            self.count += 1
            return shared_part(*args, **kwargs)

        monkeypatch.setattr(pages, "shared_part", counted)


async def test_the_kept_content_carries_each_sessions_own_token_and_its_roles_actions(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = ContentRenders(monkeypatch)
    async with one_event_projected(database_url, kafka_bootstrap, AN_HOUR) as (dash, changes):
        await dash.pool.execute(
            "INSERT INTO findings (rule, rule_version, finding_key, severity, summary,"
            " raised_at, updated_at) VALUES ('test-rule', 1, 'k', 'warning', 'A test finding',"
            " now(), now())"
        )
        other = await signed_in(dash.pool, dash.base_url, "second@iso.example.org", "secretariat")
        try:
            for _ in range(PAIRS_TRIED):
                dash.app.state.overview_cache.clear()
                renders_before, changes_before = renders.count, changes.count
                first = (await dash.secretariat.get(PAGE)).text
                second = (await other.get(PAGE)).text
                member_page = await get_ok(dash, PAGE)
                if changes.count == changes_before:
                    break
            else:
                raise AssertionError("the hub never stayed quiet for three requests")
        finally:
            await other.aclose()

    assert renders.count - renders_before == 2  # once for the secretariat's role, once a member's
    own, others = dash.secretariat.headers["X-CSRF-Token"], other.headers["X-CSRF-Token"]
    assert own != others
    assert "A test finding" in first and "A test finding" in member_page
    assert FINDING_FORM_TOKEN.findall(first) and set(FINDING_FORM_TOKEN.findall(first)) == {own}
    assert set(FINDING_FORM_TOKEN.findall(second)) == {others}
    assert FINDING_FORM_TOKEN.findall(member_page) == []
    assert all(templating.CSRF_SLOT not in page for page in (first, second, member_page))


async def test_a_score_snapshot_is_announced(database_url: str, kafka_bootstrap: str) -> None:
    """The scheduler's coherence score snapshot is on the overview: it is announced like any
    change, so the cache is emptied at once rather than after its max age."""
    async with one_event_projected(database_url, kafka_bootstrap, AN_HOUR) as (dash, _):
        hub, engine = dash.app.state.hub, dash.app.state.engine
        async with hub.subscribe() as announced:
            await engine.tick(dash.pool)
            assert "at" in await announcement(announced, "score")
