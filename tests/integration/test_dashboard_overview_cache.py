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
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

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
T = TypeVar("T")


class QueryRuns:
    """Counts the runs of one function of ``queries``: by default ``overview`` (the page's and
    the API's dozen queries)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str = "overview") -> None:
        self.count = 0
        query = getattr(queries, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await query(*args, **kwargs)

        monkeypatch.setattr(queries, name, counted)


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
    dash: Dashboard, path: str, runs: QueryRuns, changes: HubChanges
) -> int:
    """The query runs of a request that follows another with no change between."""

    async def pair() -> int:
        await get_ok(dash, path)
        runs_before = runs.count
        await get_ok(dash, path)
        return runs.count - runs_before

    return await while_quiet(changes, pair, f"two requests of {path}")


async def while_quiet(changes: HubChanges, requests: Callable[[], Awaitable[T]], what: str) -> T:
    """What `requests` give, run again until no change reached the hub while they ran (a
    change during them empties the cache)."""
    for _ in range(PAIRS_TRIED):
        changes_before = changes.count
        result = await requests()
        if changes.count == changes_before:
            return result
    raise AssertionError(f"the hub never stayed quiet for {what}")


async def get_ok(dash: Dashboard, path: str) -> str:
    response = await dash.member.get(path)
    assert response.status_code == 200, response.text
    return response.text


def nlib_spent(event_id: str, on: date | None = None) -> Any:
    """A spending of this year, or one dated `on`."""
    time = datetime(on.year, on.month, on.day, 12, tzinfo=UTC) if on else datetime.now(UTC)
    return make_event(
        "nl.teamnl.nlib.budget.spent.v1",
        time=time,
        spend_id=event_id,
        amount_cents=500_00,
        year=time.year,
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
    runs = QueryRuns(monkeypatch)
    async with one_event_projected(database_url, kafka_bootstrap, AN_HOUR) as (dash, changes):
        assert await runs_of_a_second_request(dash, PAGE, runs, changes) == 0
        assert await runs_of_a_second_request(dash, API, runs, changes) == 0
        assert nlib_events_on_the_page(await get_ok(dash, PAGE)) == 1

        await projected_and_announced(dash, nlib_spent("second"))
        assert nlib_events_on_the_page(await get_ok(dash, PAGE)) == 2
        overview = await dash.get(API)
        assert {i["family"]: i["events"] for i in overview["initiatives"]}["nlib"] == 2


async def test_the_latest_events_date_is_read_once_between_two_changes(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page and view starts from the latest event's date (a data set of past years is
    read as of it): a second request takes it from the cache, and a later event projected
    moves it at once."""
    runs = QueryRuns(monkeypatch, "latest_event_on")
    year = datetime.now(UTC).year - 2
    settings = dashboard_settings(database_url, kafka_bootstrap, overview_cache_seconds=AN_HOUR)
    async with running_dashboard(settings) as dash:
        changes = HubChanges(dash)
        await dash.publish(nlib_spent("first", on=date(year, 3, 1)))
        await dash.wait_applied(1)
        await listening(dash)
        assert await runs_of_a_second_request(dash, PAGE, runs, changes) == 0
        assert await runs_of_a_second_request(dash, API, runs, changes) == 0
        assert (await dash.get(API))["as_of"] == f"{year}-03-01"

        await projected_and_announced(dash, nlib_spent("later", on=date(year, 5, 1)))
        assert (await dash.get(API))["as_of"] == f"{year}-05-01"


async def test_with_no_max_age_nothing_is_kept(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = QueryRuns(monkeypatch)
    async with one_event_projected(database_url, kafka_bootstrap, 0) as (dash, changes):
        assert await runs_of_a_second_request(dash, PAGE, runs, changes) == 1
        assert await runs_of_a_second_request(dash, API, runs, changes) == 1


FINDING_FORM_TOKEN = re.compile(
    r'<form method="post" action="/findings/\d+/(?:acknowledge|resolve)"[^>]*>\s*'
    r'<input type="hidden" name="csrf_token" value="([^"]+)">'
)


class Renders:
    """Counts the renderings through one module's ``shared_part``: the overview's shared
    content (`pages`), or whole pages (`templating`, whose ``page`` renders through it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
        self.count = 0
        shared_part = module.shared_part

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return shared_part(*args, **kwargs)

        monkeypatch.setattr(module, "shared_part", counted)


async def test_the_kept_content_carries_each_sessions_own_token_and_its_roles_actions(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = Renders(monkeypatch, pages)
    async with one_event_projected(database_url, kafka_bootstrap, AN_HOUR) as (dash, changes):
        await dash.pool.execute(
            "INSERT INTO findings (rule, rule_version, finding_key, severity, summary,"
            " raised_at, updated_at) VALUES ('test-rule', 1, 'k', 'warning', 'A test finding',"
            " now(), now())"
        )
        other = await signed_in(dash.pool, dash.base_url, "second@iso.example.org", "secretariat")

        async def three_pages() -> tuple[int, str, str, str]:
            dash.app.state.overview_cache.clear()
            renders_before = renders.count
            first = (await dash.secretariat.get(PAGE)).text
            second = (await other.get(PAGE)).text
            member_page = await get_ok(dash, PAGE)
            return renders.count - renders_before, first, second, member_page

        try:
            rendered, first, second, member_page = await while_quiet(
                changes, three_pages, "three requests"
            )
        finally:
            await other.aclose()

    assert rendered == 2  # once for the secretariat's role, once for a member's
    own, others = dash.secretariat.headers["X-CSRF-Token"], other.headers["X-CSRF-Token"]
    assert own != others
    assert "A test finding" in first and "A test finding" in member_page
    assert FINDING_FORM_TOKEN.findall(first) and set(FINDING_FORM_TOKEN.findall(first)) == {own}
    assert set(FINDING_FORM_TOKEN.findall(second)) == {others}
    assert FINDING_FORM_TOKEN.findall(member_page) == []
    assert all(templating.CSRF_SLOT not in page for page in (first, second, member_page))


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


async def test_the_whole_page_is_kept_per_member(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member's second request for the page renders nothing; another member of the same
    role gets a page of their own, naming them, with their own session's token."""
    renders = Renders(monkeypatch, templating)
    async with one_event_projected(database_url, kafka_bootstrap, AN_HOUR) as (dash, changes):
        other = await signed_in(dash.pool, dash.base_url, "other@iso.example.org", "member")

        async def a_second_and_another_members() -> tuple[int, int, str, str]:
            # A try run again (a change came while it ran) starts empty: the other
            # member's page of the try before, made after that change, would still be kept.
            dash.app.state.overview_cache.clear()
            await get_ok(dash, PAGE)
            renders_before = renders.count
            again = await get_ok(dash, PAGE)
            renders_after_again = renders.count
            others = (await other.get(PAGE)).text
            return (
                renders_after_again - renders_before,
                renders.count - renders_after_again,
                again,
                others,
            )

        try:
            renders_again, renders_other, again, others = await while_quiet(
                changes, a_second_and_another_members, "three requests"
            )
        finally:
            await other.aclose()

    assert renders_again == 0
    assert renders_other == 1
    assert "member@iso.example.org" in again and "other@iso.example.org" not in again
    assert "other@iso.example.org" in others and "member@iso.example.org" not in others
    assert CSRF_META.findall(again) == [dash.member.headers["X-CSRF-Token"]]
    assert CSRF_META.findall(others) == [other.headers["X-CSRF-Token"]]


async def test_a_score_snapshot_is_announced(database_url: str, kafka_bootstrap: str) -> None:
    """The scheduler's coherence score snapshot is on the overview: it is announced like any
    change, so the cache is emptied at once rather than after its max age."""
    async with one_event_projected(database_url, kafka_bootstrap, AN_HOUR) as (dash, _):
        hub, engine = dash.app.state.hub, dash.app.state.engine
        async with hub.subscribe() as announced:
            await engine.tick(dash.pool)
            assert "at" in await announcement(announced, "score")
