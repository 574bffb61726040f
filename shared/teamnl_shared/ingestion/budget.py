"""``<family>.budget.spent.v1``: the one event type every family has, handled once here."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.types import BudgetSpent

from .service import Rejected, Resource, SetHandler, data_as


class BudgetSpending(BaseModel):
    spending_id: str
    family: str
    spend_id: str
    year: int
    amount_cents: int
    category: str
    spent_on: date


BUDGET_RESOURCE = Resource(
    name="budget-spendings",
    table="budget_spendings",
    key="spending_id",
    model=BudgetSpending,
    filters={"family": str, "year": int, "category": str},
    description="Budget spendings; `spending_id` is `<family>:<spend_id>`.",
    written_by_field="spend_id",
)


def _spending_args(event: Event) -> tuple[Any, ...]:
    data = data_as(event, BudgetSpent)
    family = event.spec.family
    return (
        f"{family}:{data.spend_id}",
        family,
        data.spend_id,
        data.year,
        data.amount_cents,
        data.category,
        data.spent_on,
    )


def _already_recorded(event: Event) -> Rejected:
    spend_id = data_as(event, BudgetSpent).spend_id
    return Rejected("data/spend_id", f"spending {spend_id} is already recorded", status=409)


handle_budget_spent = SetHandler(
    table="budget_spendings",
    statement="INSERT INTO budget_spendings"
    " (spending_id, family, spend_id, year, amount_cents, category, spent_on)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    args=_spending_args,
    refusal=_already_recorded,
)
