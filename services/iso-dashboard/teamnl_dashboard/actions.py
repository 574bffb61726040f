"""What people change on the dashboard: a finding acknowledged or resolved.

Opens the transaction (the runtime's job for requests) and leaves the SQL to the
findings repository. Used by the JSON API and the web pages alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Path

from teamnl_shared.db import transaction

from .rules.findings import TransitionRefused, change_state

__all__ = ["FindingId", "TransitionRefused", "change_finding"]

FindingId = Annotated[int, Path(ge=1, le=2**63 - 1)]
"""A finding's id in a path (the API's and the web form's): one beyond PostgreSQL's bigint
is a 422 naming it, not a 500 when the database refuses it."""


async def change_finding(
    pool: asyncpg.Pool,
    finding_id: int,
    state: str,
    by: str,
    *,
    at: datetime | None = None,
    note: str | None = None,
) -> dict[str, Any] | None:
    """Move a finding to ``acknowledged`` or ``resolved`` on behalf of ``by``.

    Returns the finding, None when it does not exist; raises TransitionRefused when its
    state does not allow the change (e.g. acknowledging a resolved finding).
    """
    if state not in ("acknowledged", "resolved"):
        raise ValueError(f"a finding cannot be set to {state!r} by hand")
    async with transaction(pool) as conn:
        return await change_state(conn, finding_id, state, by, at or datetime.now(UTC), note)
