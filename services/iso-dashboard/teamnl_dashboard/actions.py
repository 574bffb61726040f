"""What people change on the dashboard: a finding acknowledged or resolved.

Opens the transaction (the runtime's job for requests) and leaves the SQL to the
findings repository. Used by the JSON API and the web pages alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from teamnl_shared.db import transaction

from .rules.findings import TransitionRefused, change_state

__all__ = ["TransitionRefused", "change_finding"]


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
