"""The per-partner data-quality reports of the ingestion services (the scorecard's rows).

A report is a fact about the running system, not about the network: it is not recorded
among the initiative events (no title, no family total, no activity)."""

from __future__ import annotations

import json

import asyncpg

from teamnl_shared.contract import ops
from teamnl_shared.contract.envelope import Event


async def quality_reported(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ops.PartnerQualityReported)
    await conn.execute(
        "INSERT INTO partner_quality_reports (source, report_id, service, reporter, partner,"
        " window_start, window_end, accepted, replayed, conflicting, parked, rejected,"
        " rejected_total, lateness_samples, lateness_p50_seconds, lateness_max_seconds,"
        " last_accepted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb,"
        " $13, $14, $15, $16, $17)"
        " ON CONFLICT DO NOTHING",
        event.source,
        data.report_id,
        data.service,
        data.reporter,
        data.partner,
        data.window_start,
        data.window_end,
        data.accepted,
        data.replayed,
        data.conflicting,
        data.parked,
        json.dumps(data.rejected),
        sum(data.rejected.values()),
        data.lateness_samples,
        data.lateness_p50_seconds,
        data.lateness_max_seconds,
        data.last_accepted_at,
    )


PROJECTORS = {ops.PartnerQualityReported.TYPE: quality_reported}
