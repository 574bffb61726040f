"""The per-partner data-quality scorecard, read from the ingestion services' reports
(``partner_quality_reports``, see projections/quality.py): the repository of the
``/partners`` page, ``/api/v1/partners/quality`` and the ``partner-quality`` rule.

Each report covers one partner, one process and one window; the scorecard sums the reports
whose window ended within the last ``hours``. The median lateness over several windows is
the median of each window weighted by its samples (an estimate: medians do not add up);
the largest lateness is exact.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

MAX_WINDOW_HOURS = 24 * 90
"""The longest window the scorecard and the ``partner-quality`` rule sum (90 days)."""

_SCORECARD = """
SELECT partner, service,
    coalesce(sum(accepted) FILTER (WHERE recent), 0) AS accepted,
    coalesce(sum(replayed) FILTER (WHERE recent), 0) AS replayed,
    coalesce(sum(conflicting) FILTER (WHERE recent), 0) AS conflicting,
    coalesce(sum(rejected_total) FILTER (WHERE recent), 0) AS rejected,
    coalesce(sum(parked) FILTER (WHERE recent), 0) AS parked,
    coalesce(sum(lateness_samples) FILTER (WHERE recent), 0) AS lateness_samples,
    sum(lateness_p50_seconds * lateness_samples) FILTER (WHERE recent)
        / nullif(sum(lateness_samples) FILTER (WHERE recent
                 AND lateness_p50_seconds IS NOT NULL), 0) AS lateness_p50_seconds,
    max(lateness_max_seconds) FILTER (WHERE recent) AS lateness_max_seconds,
    max(last_accepted_at) AS last_accepted_at,
    max(window_end) AS last_report_at
FROM (SELECT *, window_end > $1 AS recent FROM partner_quality_reports) r
GROUP BY partner, service
ORDER BY partner, service
"""

_REASONS = """
SELECT partner, service, reason, sum(count::bigint) AS count
FROM partner_quality_reports, jsonb_each_text(rejected) AS r(reason, count)
WHERE window_end > $1
GROUP BY partner, service, reason
"""


def _refused_share(events: int, refused: int) -> float | None:
    return refused / events if events else None


def _row(record: asyncpg.Record, reasons: dict[str, int], now: datetime) -> dict[str, Any]:
    row = dict(record)
    total = row["accepted"] + row["replayed"] + row["conflicting"] + row["rejected"]
    last = row["last_accepted_at"]
    return {
        **row,
        "rejected_by_reason": dict(sorted(reasons.items())),
        "events": total,
        "refused_share": _refused_share(total, row["conflicting"] + row["rejected"]),
        "silence_seconds": max((now - last).total_seconds(), 0.0) if last else None,
    }


async def scorecard(pool: asyncpg.Pool, now: datetime, hours: int) -> dict[str, Any]:
    """Per partner and service: what it sent in the last ``hours`` and how long it has
    been silent (since its last accepted event, over all reports)."""
    since = now - timedelta(hours=hours)
    async with pool.acquire() as conn:
        rows = await conn.fetch(_SCORECARD, since)
        reason_rows = await conn.fetch(_REASONS, since)
    reasons: dict[tuple[str, str], dict[str, int]] = {}
    for r in reason_rows:
        reasons.setdefault((r["partner"], r["service"]), {})[r["reason"]] = r["count"]
    return {
        "since": since,
        "until": now,
        "hours": hours,
        "partners": [_row(r, reasons.get((r["partner"], r["service"]), {}), now) for r in rows],
    }
