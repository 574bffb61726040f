"""Every long-running process settles Python's garbage collector once it has started, before
it serves (`teamnl_shared.collector`): what start-up allocated is frozen and the young
generation is looked at every `YOUNG_THRESHOLD` objects, not 700 (a rebuild's replay,
which keeps whole fetches of events alive, every `REPLAY_YOUNG_THRESHOLD`)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Coroutine, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import teamnl_dashboard.main as dashboard_main
import teamnl_dashboard.rebuild as dashboard_rebuild
import teamnl_dashboard.worker as dashboard_worker
import teamnl_shared.ingestion.server as ingestion_server
import teamnl_shared.relay_main as relay_main
from teamnl_dashboard.rebuild import REPLAY_YOUNG_THRESHOLD
from teamnl_dashboard.settings import DashboardSettings
from teamnl_nlib.app import create_app as create_nlib_app
from teamnl_nlib.settings import NlibSettings
from teamnl_shared.collector import YOUNG_THRESHOLD, settle_collector

DATABASE = "postgresql://teamnl@127.0.0.1:1/never"


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    """Each test starts from CPython's settings and leaves them as it found them."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, threshold[1], threshold[2])
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _state() -> tuple[int, bool]:
    return gc.get_threshold()[0], gc.get_freeze_count() > 0


def test_settling_freezes_what_the_process_holds_and_looks_less_often() -> None:
    held = object.__new__(type("Held", (), {}))  # a container the collector tracks
    assert gc.is_tracked(held) and _state() == (700, False)

    settle_collector()

    assert _state() == (YOUNG_THRESHOLD, True)
    assert gc.get_freeze_count() >= len(gc.get_referrers(held)) + 1
    assert not any(o is held for o in gc.get_objects())  # frozen: no longer in a generation


def _recording(seen: list[tuple[int, bool]]) -> Callable[..., Any]:
    """In place of uvicorn.run or uvloop.run: notes the collector's state; a result as a
    rebuild's (the rebuild's main prints it)."""

    def run(*args: Any, **_kwargs: Any) -> SimpleNamespace:
        for argument in args:  # a coroutine given to uvloop.run is never awaited here
            if isinstance(argument, Coroutine):
                argument.close()
        seen.append(_state())
        return SimpleNamespace(records=0, applied=0, dead_letters=0, seconds=0.0, phases={})

    return run


def _serve_nlib() -> None:
    ingestion_server.serve(NlibSettings(database_url=DATABASE), create_nlib_app)


class _Pipe:
    """In place of the pipes a rebuild's part process is told to begin on and sends its
    result on."""

    def send(self, _message: object) -> None:
        pass

    def close(self) -> None:
        pass


def _replay_a_part() -> None:
    settings = DashboardSettings(database_url=DATABASE)
    dashboard_rebuild._replay_part_in_process(settings, "proj", {}, _Pipe(), _Pipe())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("module", "runner", "start", "argv", "threshold"),
    [
        (ingestion_server, "uvicorn", _serve_nlib, [], YOUNG_THRESHOLD),
        (dashboard_main, "uvicorn", dashboard_main.main, [], YOUNG_THRESHOLD),
        (dashboard_worker, "uvloop", dashboard_worker.main, [], YOUNG_THRESHOLD),
        (dashboard_rebuild, "uvloop", dashboard_rebuild.main, [], REPLAY_YOUNG_THRESHOLD),
        (dashboard_rebuild, "uvloop", _replay_a_part, [], REPLAY_YOUNG_THRESHOLD),
        (
            relay_main,
            "uvloop",
            relay_main.main,
            ["--service", "nlib", "--database-url", DATABASE, "--bootstrap", "x:1"],
            YOUNG_THRESHOLD,
        ),
    ],
    ids=[
        "initiative service",
        "dashboard",
        "dashboard worker",
        "rebuild",
        "rebuild's part process",
        "outbox relay",
    ],
)
def test_each_process_settles_the_collector_before_it_serves(
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    runner: str,
    start: Callable[[], None],
    argv: list[str],
    threshold: int,
) -> None:
    seen: list[tuple[int, bool]] = []
    monkeypatch.setattr(getattr(module, runner), "run", _recording(seen))
    if hasattr(module, "configure_logging"):
        monkeypatch.setattr(module, "configure_logging", lambda *_: None)
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", DATABASE)
    monkeypatch.setattr(sys, "argv", ["teamnl", *argv])

    start()

    assert seen == [(threshold, True)]
