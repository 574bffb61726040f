"""The overview's read cache on its own: one computation per key between two changes,
shared by concurrent misses, never served while the hub is not listening, never older
than its max age (a clock the test moves), a failure not kept. The dashboard wired to
PostgreSQL NOTIFY is proven in tests/integration/test_dashboard_overview_cache.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from teamnl_dashboard.read_cache import ReadCache


class Counted:
    """A computation that counts its runs and, while `gate` is closed, waits for it."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> dict[str, Any]:
        self.runs += 1
        run = self.runs
        await self.gate.wait()
        return {"run": run}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(max_age: float = 5.0, live: bool = True, clock: Clock | None = None) -> ReadCache:
    return ReadCache(max_age, lambda: live, clock or Clock())


async def test_a_value_is_computed_once_until_the_cache_is_cleared() -> None:
    kept, compute = cache(), Counted()
    assert await kept.get("k", compute) == {"run": 1}
    assert await kept.get("k", compute) == {"run": 1}
    assert await kept.get("other", compute) == {"run": 2}  # keys are kept apart
    kept.clear()
    assert await kept.get("k", compute) == {"run": 3}


async def test_concurrent_misses_share_one_computation() -> None:
    kept, compute = cache(), Counted()
    compute.gate.clear()
    waiting = [asyncio.create_task(kept.get("k", compute)) for _ in range(10)]
    await asyncio.sleep(0)
    compute.gate.set()
    assert await asyncio.gather(*waiting) == [{"run": 1}] * 10
    assert compute.runs == 1


async def test_a_change_during_a_computation_is_not_hidden_by_its_result() -> None:
    """Cleared while computing: those already waiting get the result, the next request
    computes again (it may have started before the change was committed)."""
    kept, compute = cache(), Counted()
    compute.gate.clear()
    before = asyncio.create_task(kept.get("k", compute))
    await asyncio.sleep(0)
    kept.clear()
    compute.gate.set()
    assert await before == {"run": 1}
    assert await kept.get("k", compute) == {"run": 2}


async def test_a_request_that_goes_away_does_not_cancel_the_shared_computation() -> None:
    kept, compute = cache(), Counted()
    compute.gate.clear()
    leaving = asyncio.create_task(kept.get("k", compute))
    staying = asyncio.create_task(kept.get("k", compute))
    await asyncio.sleep(0)
    leaving.cancel()
    compute.gate.set()
    assert await staying == {"run": 1}
    assert compute.runs == 1


async def test_an_entry_is_never_older_than_its_max_age() -> None:
    clock = Clock()
    kept, compute = cache(max_age=5.0, clock=clock), Counted()
    await kept.get("k", compute)
    clock.now += 4.9
    assert await kept.get("k", compute) == {"run": 1}
    clock.now += 0.1
    assert await kept.get("k", compute) == {"run": 2}


@pytest.mark.parametrize(("max_age", "live"), [(0.0, True), (5.0, False)])
async def test_nothing_is_kept_when_off_or_while_the_hub_is_not_listening(
    max_age: float, live: bool
) -> None:
    kept, compute = cache(max_age=max_age, live=live), Counted()
    await kept.get("k", compute)
    await kept.get("k", compute)
    assert compute.runs == 2


async def test_a_failed_computation_is_not_kept() -> None:
    kept = cache()
    calls = 0

    async def failing_once() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return {"ok": True}

    with pytest.raises(ConnectionError):
        await kept.get("k", failing_once)
    assert await kept.get("k", failing_once) == {"ok": True}
