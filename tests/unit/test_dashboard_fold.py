"""The running totals are folded beside the consumers (`projections.totals`), not in their
transactions: at most once per `totals_fold_seconds` after a commit woke the folder,
vacuumed at most once per `totals_vacuum_seconds`, and by one instance at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from teamnl_dashboard.consumer import DashboardHandlers
from teamnl_dashboard.projections.totals import VACUUM, TotalsFolder

FOLD = "SELECT fold_totals()"


class _Conn:
    """Records the statements sent (the database is an edge here)."""

    def __init__(self, lock_free: bool = True) -> None:
        self.statements: list[str] = []
        self.lock_free = lock_free

    async def execute(self, query: str, *args: Any) -> str:
        self.statements.append(query)
        return "OK"

    async def fetchval(self, query: str, *args: Any) -> bool:
        self.statements.append(query)
        return self.lock_free

    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()  # type: ignore[return-value]  # async-capable


class _Pool:
    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Conn]:
        yield self.conn


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _folder(conn: _Conn, clock: _Clock, interval: float = 0.05) -> TotalsFolder:
    return TotalsFolder(
        _Pool(conn),  # type: ignore[arg-type]
        interval=interval,
        vacuum_seconds=10.0,
        clock=clock,
    )


async def test_a_fold_vacuums_the_totals_at_most_once_per_interval() -> None:
    """Proves: the first fold vacuums, folds within `vacuum_seconds` of it do not, the
    first after it does again."""
    conn, clock = _Conn(), _Clock()
    folder = _folder(conn, clock)
    vacuums = []
    for step in (0.0, 3.0, 6.0, 2.0, 1.0):
        clock.now += step
        assert await folder.fold()
        vacuums.append(conn.statements.count(VACUUM))
    assert conn.statements.count(FOLD) == 5
    assert vacuums == [1, 1, 1, 2, 2]
    assert VACUUM.startswith("VACUUM proj.family_totals, proj.activity_months")


async def test_a_folder_that_finds_another_folding_leaves_it_to_that_one() -> None:
    """Proves: when the advisory lock is taken (another instance folds), nothing is folded
    nor vacuumed."""
    conn, clock = _Conn(lock_free=False), _Clock()
    folder = _folder(conn, clock)
    assert not await folder.fold()
    assert FOLD not in conn.statements and VACUUM not in conn.statements


async def test_the_folder_folds_after_a_wake_and_not_more_often_than_its_interval() -> None:
    """Proves: nothing is folded until a commit wakes the folder; wakes within one interval
    give one fold more, not one each."""
    conn, clock = _Conn(), _Clock()
    folder = _folder(conn, clock, interval=0.3)
    stopping = asyncio.Event()
    running = asyncio.create_task(folder.run(stopping))
    await asyncio.sleep(0.1)
    assert folder.folds == 0
    folder.wake()
    await asyncio.sleep(0.05)
    assert folder.folds == 1
    for _ in range(5):  # within the interval that follows the fold
        folder.wake()
        await asyncio.sleep(0.02)
    assert folder.folds == 1
    await asyncio.sleep(0.35)
    assert folder.folds == 2
    stopping.set()
    await asyncio.wait_for(running, 1)


class _Engine:
    def __init__(self) -> None:
        self.queued = 0

    async def queue(self, conn: Any, events: Any) -> None:
        self.queued += 1


async def test_a_consumer_batch_queues_the_rules_and_folds_nothing_itself() -> None:
    """Proves: the batch's transaction only queues what it owes the rules; the fold is the
    folder's, which the commit wakes."""
    conn, engine = _Conn(), _Engine()
    handlers = DashboardHandlers(pool=None, engine=engine)  # type: ignore[arg-type]
    await handlers.before_commit(conn, [])  # type: ignore[arg-type]
    assert engine.queued == 1 and conn.statements == []
