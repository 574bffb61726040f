"""The dashboard's set-based projection writes: which statements go out together, in which
order (a fake connection at the edge records what would be sent)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from teamnl_dashboard.projections.writes import BufferedWrites

ONBOARD = "INSERT INTO wp_projects (project_id, status) VALUES ($1, 'active')"
END = "UPDATE wp_projects SET status = $2 WHERE project_id = $1"
EVENT = "INSERT INTO events (event_id) VALUES ($1) ON CONFLICT DO NOTHING"


class RecordingConnection:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Sequence[object]]]] = []

    async def executemany(self, sql: str, rows: list[Sequence[object]]) -> None:
        self.sent.append((sql, list(rows)))


async def test_one_executemany_per_statement_and_table_while_nothing_comes_in_between() -> None:
    writes, conn = BufferedWrites(), RecordingConnection()
    for n in range(3):
        await writes.execute(EVENT, f"e{n}")
        await writes.execute(ONBOARD, f"p{n}")
    await writes.flush(conn)  # type: ignore[arg-type]
    assert conn.sent == [
        (EVENT, [("e0",), ("e1",), ("e2",)]),
        (ONBOARD, [("p0",), ("p1",), ("p2",)]),
    ]


async def test_statements_on_one_table_keep_their_order() -> None:
    """Onboarded p1, ended p2, onboarded p2: ending p2 before its onboarding would end
    nothing, so the second onboarding is a run of its own, after the end."""
    writes, conn = BufferedWrites(), RecordingConnection()
    await writes.execute(ONBOARD, "p1")
    await writes.execute(END, "p2", "stopped")
    await writes.execute(ONBOARD, "p2")
    await writes.flush(conn)  # type: ignore[arg-type]
    assert conn.sent == [(ONBOARD, [("p1",)]), (END, [("p2", "stopped")]), (ONBOARD, [("p2",)])]


async def test_flush_and_discard_leave_the_buffer_empty() -> None:
    writes, conn = BufferedWrites(), RecordingConnection()
    await writes.execute(EVENT, "dropped")
    writes.discard()
    await writes.executemany(EVENT, [])
    await writes.flush(conn)  # type: ignore[arg-type]
    await writes.execute(EVENT, "kept")
    await writes.flush(conn)  # type: ignore[arg-type]
    await writes.flush(conn)  # type: ignore[arg-type]
    assert conn.sent == [(EVENT, [("kept",)])]


async def test_a_projector_may_only_write() -> None:
    with pytest.raises(ValueError, match="only INSERT or UPDATE"):
        await BufferedWrites().execute("DELETE FROM events")
