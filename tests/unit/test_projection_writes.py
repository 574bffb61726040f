"""The dashboard's set-based projection writes: which statements go out together, in which
order (a fake connection at the edge records what would be sent)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from asyncpg.types import Type

from teamnl_dashboard.projections.writes import BufferedWrites

ONBOARD = "INSERT INTO wp_projects (project_id, status) VALUES ($1, 'active')"
END = "UPDATE wp_projects SET status = $2 WHERE project_id = $1"
EVENT = "INSERT INTO events (event_id) VALUES ($1) ON CONFLICT DO NOTHING"
EVENTS = (
    "INSERT INTO events (event_id) SELECT * FROM unnest($1::pg_catalog.text[])"
    " ON CONFLICT DO NOTHING"
)
TEXT = Type(oid=25, name="text", kind="scalar", schema="pg_catalog")
TEXT_ARRAY = Type(oid=1009, name="_text", kind="array", schema="pg_catalog")


class PreparedStatement:
    def __init__(self, parameters: tuple[Type, ...]) -> None:
        self.parameters = parameters

    def get_parameters(self) -> tuple[Type, ...]:
        return self.parameters


class RecordingConnection:
    """Sends nothing; the types a server would infer for the parameters: text, or text[]
    for the parameters numbered in ``arrays``."""

    def __init__(self, arrays: frozenset[int] = frozenset()) -> None:
        self.sent: list[tuple[str, list[Sequence[object]]]] = []
        self.arrays = arrays

    async def executemany(self, sql: str, rows: list[Sequence[object]]) -> None:
        self.sent.append((sql, list(rows)))

    async def execute(self, sql: str, *args: object) -> None:
        self.sent.append((sql, list(args)))

    async def prepare(self, sql: str) -> PreparedStatement:
        count = sql.count("$")
        return PreparedStatement(
            tuple(TEXT_ARRAY if n in self.arrays else TEXT for n in range(1, count + 1))
        )


async def test_one_executemany_per_statement_and_table_while_nothing_comes_in_between() -> None:
    writes, conn = BufferedWrites(), RecordingConnection()
    for n in range(3):
        await writes.execute(EVENT, f"e{n}")
        await writes.execute(ONBOARD, f"p{n}")
    await writes.flush(conn)  # type: ignore[arg-type]
    assert conn.sent == [
        (EVENTS, [["e0", "e1", "e2"]]),
        (ONBOARD, [("p0",), ("p1",), ("p2",)]),
    ]


async def test_a_run_of_an_insert_that_skips_existing_rows_is_one_statement() -> None:
    """One execution for the run, so the table's statement-level triggers run once; one
    array per column, the rows in their order."""
    insert = "INSERT INTO wp_members (project_id, member) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    writes, conn = BufferedWrites(), RecordingConnection()
    await writes.executemany(insert, [("p1", "a"), ("p1", None), ("p2", "a")])
    await writes.flush(conn)  # type: ignore[arg-type]
    assert conn.sent == [
        (
            "INSERT INTO wp_members (project_id, member) SELECT * FROM"
            " unnest($1::pg_catalog.text[], $2::pg_catalog.text[]) ON CONFLICT DO NOTHING",
            [["p1", "p1", "p2"], ["a", None, "a"]],
        )
    ]


@pytest.mark.parametrize(
    "insert",
    [
        # an upsert that updates with a parameter, or on a key it does not insert
        "INSERT INTO wp_members (project_id, member) VALUES ($1, $2)"
        " ON CONFLICT (project_id) DO UPDATE SET member = $2",
        "INSERT INTO wp_members (project_id, member) VALUES ($1, $2)"
        " ON CONFLICT (joined_on) DO UPDATE SET member = excluded.member",
        # parameters out of order, or an expression among the values
        "INSERT INTO wp_members (project_id, member) VALUES ($2, $1) ON CONFLICT DO NOTHING",
        "INSERT INTO wp_projects (project_id, status) VALUES ($1, 'active') ON CONFLICT DO NOTHING",
        # an array column: unnest would flatten it
        "INSERT INTO wp_projects (project_id, sdgs) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    ],
)
async def test_other_statements_go_row_by_row(insert: str) -> None:
    writes, conn = BufferedWrites(), RecordingConnection(arrays=frozenset({2}))
    await writes.executemany(insert, [("p1", "a"), ("p2", "b")])
    await writes.flush(conn)  # type: ignore[arg-type]
    assert conn.sent == [(insert, [("p1", "a"), ("p2", "b")])]


UPSERT = (
    "INSERT INTO wp_members (project_id, member) VALUES ($1, $2)"
    " ON CONFLICT (project_id) DO UPDATE SET member = excluded.member"
)


async def test_a_run_of_an_upsert_without_a_repeated_key_is_one_statement() -> None:
    """Each row then meets only what was there before the run, as one by one."""
    writes, conn = BufferedWrites(), RecordingConnection()
    await writes.executemany(UPSERT, [("p1", "a"), ("p2", "a")])
    await writes.flush(conn)  # type: ignore[arg-type]
    assert conn.sent == [
        (
            "INSERT INTO wp_members (project_id, member) SELECT * FROM"
            " unnest($1::pg_catalog.text[], $2::pg_catalog.text[])"
            " ON CONFLICT (project_id) DO UPDATE SET member = excluded.member",
            [["p1", "p2"], ["a", "a"]],
        )
    ]


async def test_a_run_of_an_upsert_that_repeats_a_key_goes_row_by_row() -> None:
    """One statement may not update a row twice (PostgreSQL refuses it)."""
    writes, conn = BufferedWrites(), RecordingConnection()
    await writes.executemany(UPSERT, [("p1", "a"), ("p2", "a"), ("p1", "b")])
    await writes.flush(conn)  # type: ignore[arg-type]
    assert conn.sent == [(UPSERT, [("p1", "a"), ("p2", "a"), ("p1", "b")])]


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
