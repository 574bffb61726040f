"""The findings repository: reconcile a rule's hits with stored findings; state changes.

A finding is *live* while its rule still sees the situation (``condition_holds``). New
hits raise findings (``open``); live findings whose situation is gone are resolved by
``rules``; people acknowledge and resolve through the API. Every change is recorded in
``finding_changes`` and announced on the live channel when the transaction commits.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from ..live import notify, notify_each
from .model import Hit

SYSTEM_ACTOR = "rules"
_FINDING_COLUMNS = (
    "id, rule, rule_version, finding_key, severity, summary, details, event_ids, state,"
    " condition_holds, raised_at, updated_at, acknowledged_by, acknowledged_at, resolved_by,"
    " resolved_at"
)


async def reconcile(
    conn: asyncpg.Connection,
    rule: str,
    version: int,
    hits: list[Hit],
    now: datetime,
    within: set[str] | None = None,
    live: dict[str, Content] | None = None,
    grown: Growth | None = None,
) -> int:
    """Store `hits` as the rule's live findings (of the keys `within`, when given: the
    rule judged only those); returns how many findings changed. `grown`: what the
    transaction has written to ``findings`` so far (:class:`Growth`).

    Compared with the live findings first, so only what changed is written: a rule that
    sees the same hundred thousand situations as last time writes nothing. `live`: those
    findings, when the caller read them already (:func:`live_findings`, of the same keys;
    read on another connection, they must be findings this transaction has not written)."""
    unique = {hit.key: hit for hit in hits}
    if live is None:
        live = await live_findings(conn, rule, within)
    changed = [hit for key, hit in unique.items() if live.get(key) != _content(hit)]
    raised = await _upsert(conn, rule, version, changed, now)
    gone = [key for key in live if key not in unique]
    cleared = await _clear(conn, rule, gone, now)
    if grown is not None:  # before their history's foreign key checks them
        await grown.wrote(conn, len(raised) + len(cleared))
    await _announce(conn, [*raised, *cleared], now)
    return len(raised) + len(cleared)


Content = tuple[str, str, Any, tuple[str, ...]]


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _content(hit: Hit) -> Content:
    """What a finding says, as stored (details through JSON, as the jsonb column keeps them;
    details of text and numbers by name, as most are, JSON keeps as they are)."""
    details = hit.details
    for name, value in details.items():
        if type(name) is not str or type(value) not in _JSON_SCALARS:
            details = json.loads(json.dumps(details, default=str))
            break
    # the severity as the text it is (a StrEnum), not its `.value`: the same, read faster
    return (hit.severity, hit.summary, details, tuple(hit.event_ids))


async def live_findings(
    conn: asyncpg.Connection, rule: str, within: set[str] | None = None
) -> dict[str, Content]:
    """The rule's live findings (of the keys `within`, when given) by key, with what they
    say."""
    keys = None if within is None else sorted(within)
    columns = "f.finding_key, f.severity, f.summary, f.details::text AS details, f.event_ids"
    if keys is None:
        rows = await conn.fetch(
            f"SELECT {columns} FROM findings f WHERE f.rule = $1 AND f.condition_holds",  # noqa: S608 - constants
            rule,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {columns} FROM unnest($2::text[]) k (key)"  # noqa: S608 - constants
            " JOIN findings f ON f.finding_key = k.key AND f.rule = $1 AND f.condition_holds",
            rule,
            keys,
        )
    # Each distinct details text decoded once: most findings of a rule say the same few
    # things (a project's country, a budget's family), and an evaluation of every rule
    # decoded the same text again and again. 151,000 live findings at 908,000 events, A/B
    # rounds on one stack: an evaluation's CPU 1.3-1.6 s so, against 1.7-2.4. The values
    # are shared between findings, so they are only compared, never changed.
    read = functools.cache(json.loads)
    return {
        r["finding_key"]: (
            r["severity"],
            r["summary"],
            read(r["details"]),
            tuple(r["event_ids"] or ()),
        )
        for r in rows
    }


async def live_keys_in(conn: asyncpg.Connection, rule: str, countries: Iterable[str]) -> list[str]:
    """The keys of the rule's live findings about `countries` (their details' ``country``),
    through the ``findings_live_country`` index: none read of other countries."""
    rows = await conn.fetch(
        "SELECT finding_key FROM findings WHERE rule = $1 AND condition_holds"
        " AND details ->> 'country' = ANY($2::text[])",
        rule,
        sorted(countries),
    )
    return [r["finding_key"] for r in rows]


class Growth:
    """What one transaction has written to ``findings``, to tell PostgreSQL's planner
    (ANALYZE) when the table has grown past what it knew of it.

    A plan PostgreSQL keeps - each of asyncpg's prepared statements, and the foreign key's
    check of a ``finding_changes`` row, kept for the connection's life - is made for the
    table as it was, and made again when the table is analyzed. Autovacuum analyzes it as
    it grows, but sees no rows a transaction has not committed; so one evaluation writing
    a hundred thousand findings kept plans made when the table held a few. On a fresh
    database, evaluating 82,000 held missions after the first rules' findings ran for more
    than 15 minutes: each part's ``finding_changes`` insert (2,000 rows) took 12 s and
    more, the foreign key's check scanning ``findings`` for each row. Forcing a plan for
    each statement instead (``plan_cache_mode``, 241d6e1) cured that, but planned the
    foreign key's check again for every row written: 35 us a row in psql; PostgreSQL's CPU
    per event in the bench's live projection, 0.16 ms so, 0.13 before and after.

    So the transaction analyzes the table itself each time it has written as many findings
    as the table held when last analyzed (`LEAST` at least), before their history's foreign
    key checks them: about log2 of its growth times, a few in the largest evaluation. A plan
    made for a table too small to use its indexes (a few hundred rows) scans it for at most
    `LEAST` rows. Only the columns statements select findings by are analyzed. The table's
    size in ``pg_class`` is not transactional: a transaction rolled back leaves it
    overstated until the next analysis."""

    COLUMNS = "id, rule, finding_key, condition_holds, state, severity"
    LEAST = 1000

    def __init__(self, known: float) -> None:
        self._known = max(known, 0.0)  # -1: never analyzed
        self._since = 0

    @classmethod
    async def since_analyzed(cls, conn: asyncpg.Connection) -> Growth:
        """Counting from the table's size when last analyzed (none yet: empty)."""
        known = await conn.fetchval(
            "SELECT reltuples FROM pg_class WHERE oid = 'findings'::regclass"
        )
        return cls(known)

    async def wrote(self, conn: asyncpg.Connection, rows: int) -> None:
        """Count `rows` written (raised, changed or ended), analyzing the table when they
        make it grow past what was known."""
        self._since += rows
        if self._since >= max(self.LEAST, self._known):
            await conn.execute(f"ANALYZE findings ({self.COLUMNS})")  # noqa: S608 - constants
            self._known += self._since
            self._since = 0


async def _upsert(
    conn: asyncpg.Connection, rule: str, version: int, hits: list[Hit], now: datetime
) -> list[asyncpg.Record]:
    if not hits:
        return []
    return await conn.fetch(
        "INSERT INTO findings (rule, rule_version, finding_key, severity, summary, details,"
        " event_ids, raised_at, updated_at)"
        " SELECT $1, $2, h.k, h.s, h.m, h.d::jsonb,"
        "  ARRAY(SELECT jsonb_array_elements_text(h.e::jsonb)), $3, $3"
        " FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[])"
        "  AS h(k, s, m, d, e)"
        " ON CONFLICT (rule, finding_key) WHERE condition_holds DO UPDATE SET"
        " rule_version = excluded.rule_version, severity = excluded.severity,"
        " summary = excluded.summary, details = excluded.details,"
        " event_ids = excluded.event_ids, updated_at = excluded.updated_at"
        " WHERE (findings.severity, findings.summary, findings.details, findings.event_ids)"
        "  IS DISTINCT FROM (excluded.severity, excluded.summary, excluded.details,"
        "  excluded.event_ids)"
        " RETURNING id, rule, severity, state, (xmax = 0) AS raised",
        rule,
        version,
        now,
        [h.key for h in hits],
        [h.severity.value for h in hits],
        [h.summary for h in hits],
        [json.dumps(h.details, sort_keys=True, default=str) for h in hits],
        [json.dumps(list(h.event_ids)) for h in hits],
    )


async def _clear(
    conn: asyncpg.Connection, rule: str, gone: list[str], now: datetime
) -> list[asyncpg.Record]:
    """End the live findings of `gone` keys, which the rule no longer sees; returns those
    it resolved itself."""
    if not gone:
        return []
    rows = await conn.fetch(
        "WITH gone AS (SELECT f.id, f.state AS was FROM unnest($2::text[]) k (key)"
        "  JOIN findings f ON f.finding_key = k.key AND f.rule = $1 AND f.condition_holds"
        "  FOR UPDATE OF f)"
        " UPDATE findings f SET condition_holds = false, state = 'resolved',"
        "  updated_at = CASE WHEN gone.was = 'resolved' THEN f.updated_at ELSE $3 END,"
        "  resolved_by = CASE WHEN gone.was = 'resolved' THEN f.resolved_by ELSE $4 END,"
        "  resolved_at = CASE WHEN gone.was = 'resolved' THEN f.resolved_at ELSE $3 END"
        " FROM gone WHERE f.id = gone.id"
        " RETURNING f.id, f.rule, f.severity, f.state, false AS raised, gone.was",
        rule,
        gone,
        now,
        SYSTEM_ACTOR,
    )
    # a finding resolved by hand while it held only forgets that it held: nothing to say
    return [row for row in rows if row["was"] != "resolved"]


async def _announce(conn: asyncpg.Connection, rows: list[asyncpg.Record], now: datetime) -> None:
    """Record the raised and resolved findings of `rows` in their history, and announce every
    one, in this order: one statement each, however many (a part's evaluation can change
    thousands)."""
    changes = [row for row in rows if row["raised"] or row["state"] == "resolved"]
    if changes:
        await conn.execute(
            "INSERT INTO finding_changes (finding_id, state, changed_by, changed_at)"
            " SELECT c.id, c.state, $3, $4 FROM unnest($1::bigint[], $2::text[]) AS c(id, state)",
            [row["id"] for row in changes],
            [row["state"] for row in changes],
            SYSTEM_ACTOR,
            now,
        )
    await notify_each(
        conn,
        [
            {
                "kind": "finding",
                "id": row["id"],
                "rule": row["rule"],
                "state": row["state"],
                "severity": row["severity"],
            }
            for row in rows
        ],
    )


async def _record_change(
    conn: asyncpg.Connection,
    finding_id: int,
    state: str,
    by: str,
    at: datetime,
    note: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO finding_changes (finding_id, state, changed_by, changed_at, note)"
        " VALUES ($1, $2, $3, $4, $5)",
        finding_id,
        state,
        by,
        at,
        note,
    )


class TransitionRefused(Exception):
    """The finding is not in a state that allows the change."""


_ALLOWED_FROM = {"acknowledged": ("open",), "resolved": ("open", "acknowledged")}


async def change_state(
    conn: asyncpg.Connection,
    finding_id: int,
    state: str,
    by: str,
    at: datetime,
    note: str | None = None,
) -> dict[str, Any] | None:
    """Acknowledge or resolve a finding by hand; None when it does not exist."""
    current = await conn.fetchval("SELECT state FROM findings WHERE id = $1 FOR UPDATE", finding_id)
    if current is None:
        return None
    if current not in _ALLOWED_FROM[state]:
        raise TransitionRefused(f"finding {finding_id} is {current}, cannot become {state}")
    prefix = "acknowledged" if state == "acknowledged" else "resolved"
    row = await conn.fetchrow(
        f"UPDATE findings SET state = $2, {prefix}_by = $3, {prefix}_at = $4, updated_at = $4"  # noqa: S608 - fixed column names
        f" WHERE id = $1 RETURNING {_FINDING_COLUMNS}",
        finding_id,
        state,
        by,
        at,
    )
    await _record_change(conn, finding_id, state, by, at, note)
    await notify(
        conn,
        {
            "kind": "finding",
            "id": finding_id,
            "rule": row["rule"],
            "state": state,
            "severity": row["severity"],
        },
    )
    return dict(row)
