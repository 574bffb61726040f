"""The network coherence score.

Over the trailing year, at time *t*::

    score = 100 * J / (J + W)        (100 when J + W = 0)

- *J*: joint actions - an NLIB mission and a TINL activity in the same market, same city,
  on overlapping dates (the coherence successes the duplication rule counts) - plus the
  complementary links: per market, each pair of the four initiatives that both worked it
  (``queries.complementarity``: India's NLIB mission, Global Stars call and Ganges
  programme are three links; China Business Week at home prepares for the China mission);
- *W*: the open and acknowledged findings at *t*, weighted by severity
  (info 0.25, warning 1, critical 3).

So 100 means every coherence signal is positive, 50 means problems weigh as much as joint
actions. The scheduler stores one snapshot per run; the series is those snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg

from ..queries import complementarity
from .catalogue import pair_activities
from .model import ActivityFact

SEVERITY_WEIGHTS: dict[str, float] = {"info": 0.25, "warning": 1.0, "critical": 3.0}
TRAILING_DAYS = 365


@dataclass(frozen=True)
class Score:
    score: float
    joint_actions: int
    duplications: int
    weighted_findings: float


def trailing_since(now: datetime) -> date:
    return now.date() - timedelta(days=TRAILING_DAYS)


async def complementary_links(conn: asyncpg.Connection, now: datetime) -> int:
    """The complementary links of the trailing year up to `now` (see the module doc)."""
    markets = await complementarity(conn, as_of=now.date(), since=trailing_since(now))
    return sum(len(m["links"]) for m in markets)


def weighted(open_by_severity: Mapping[str, int]) -> float:
    return sum(SEVERITY_WEIGHTS.get(s, 1.0) * n for s, n in open_by_severity.items())


def coherence_score(
    activities: tuple[ActivityFact, ...],
    open_by_severity: Mapping[str, int],
    now: datetime,
    window_days: int,
    links: int = 0,
) -> Score:
    since = trailing_since(now)
    pairs = [
        p
        for p in pair_activities(activities, window_days)
        if max(p.nlib.end_date, p.tinl.end_date) >= since
    ]
    together = sum(p.joint for p in pairs)
    joint = together + links
    weight = weighted(open_by_severity)
    value = 100.0 if joint + weight == 0 else 100.0 * joint / (joint + weight)
    return Score(round(value, 1), joint, len(pairs) - together, weight)


async def open_findings_by_severity(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT severity, sum(open)::bigint AS n FROM finding_totals GROUP BY severity"
        " HAVING sum(open) > 0"
    )
    return {r["severity"]: r["n"] for r in rows}


async def store_snapshot(conn: asyncpg.Connection, at: datetime, score: Score) -> None:
    await conn.execute(
        "INSERT INTO coherence_scores (at, score, joint_actions, duplications,"
        " weighted_findings) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (at) DO UPDATE SET"
        " score = excluded.score, joint_actions = excluded.joint_actions,"
        " duplications = excluded.duplications, weighted_findings = excluded.weighted_findings",
        at,
        score.score,
        score.joint_actions,
        score.duplications,
        score.weighted_findings,
    )
