"""The batch body budget (`teamnl_shared.ingestion.admission.BodyBudget`): bodies go side by
side while they fit, a body that does not fit waits its turn and no later one passes it, a
wait past its time is refused and leaves the budget as it was."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from teamnl_shared.ingestion.admission import BodyBudget, NotAdmitted


async def holding(budget: BodyBudget, size: int, release: asyncio.Event, log: list[int]) -> None:
    async with budget.admitted(size, wait_seconds=5):
        log.append(size)
        await release.wait()


async def held_whole() -> tuple[BodyBudget, asyncio.Event, list[int], asyncio.Task[None]]:
    """A budget of 100 held whole by a body until the event is set; the log of sizes
    admitted."""
    budget, release, log = BodyBudget(100), asyncio.Event(), list[int]()
    holder = asyncio.create_task(holding(budget, 100, release, log))
    await asyncio.sleep(0)
    return budget, release, log, holder


async def test_bodies_that_fit_go_side_by_side_and_a_larger_one_waits_its_turn() -> None:
    budget = BodyBudget(100)
    first, second = asyncio.Event(), asyncio.Event()
    log: list[int] = []
    small = [asyncio.create_task(holding(budget, 40, first, log)) for _ in range(2)]
    await asyncio.sleep(0)
    assert (log, budget.used) == ([40, 40], 80)

    large = asyncio.create_task(holding(budget, 90, second, log))
    later_small = asyncio.create_task(holding(budget, 10, second, log))
    await asyncio.sleep(0.05)
    assert log == [40, 40], "the large one waits; the small one after it does not pass it"

    first.set()
    await asyncio.gather(*small)
    await asyncio.sleep(0)
    assert log == [40, 40, 90, 10] and budget.used == 100
    second.set()
    await asyncio.gather(large, later_small)
    assert budget.used == 0


async def test_a_body_larger_than_the_budget_goes_alone() -> None:
    budget = BodyBudget(100)
    async with budget.admitted(10_000, wait_seconds=1):
        assert budget.used == 100


async def test_a_wait_past_its_time_is_refused_and_leaves_the_budget_as_it_was() -> None:
    budget, release, log, holder = await held_whole()
    with pytest.raises(NotAdmitted):
        async with budget.admitted(50, wait_seconds=0.05):
            pytest.fail("admitted beyond the budget")
    behind = asyncio.create_task(holding(budget, 60, release, log))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(holder, behind)
    assert log == [100, 60] and budget.used == 0


async def test_a_cancelled_wait_leaves_no_trace() -> None:
    budget, release, log, holder = await held_whole()
    waiter = asyncio.create_task(holding(budget, 100, release, log))
    await asyncio.sleep(0)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    assert log == [100] and budget.used == 0
    async with budget.admitted(100, wait_seconds=0.1):
        assert budget.used == 100
