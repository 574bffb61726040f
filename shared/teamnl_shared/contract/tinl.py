"""Trade & Innovate NL (TINL) events, v1: joint activities, knowledge sharing, budget."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from teamnl_shared.contract.types import (
    BUDGET_SPENT_EXAMPLE,
    BudgetSpent,
    CountryCode,
    DateSpan,
    Day,
    EventData,
    Identifier,
    Market,
    NonEmptyStr,
    NonEmptyUniqueList,
    event,
)


class TinlPartner(StrEnum):
    """The eight partners of the TINL convenant of 22 January 2018."""

    AMSTERDAM_IN_BUSINESS = "amsterdam-in-business"
    BRAINPORT_EINDHOVEN = "brainport-eindhoven"
    ROTTERDAM_PARTNERS = "rotterdam-partners"
    BOM = "bom"
    OOST_NL = "oost-nl"
    INNOVATIONQUARTER = "innovationquarter"
    ECONOMIC_BOARD_UTRECHT = "economic-board-utrecht"
    RVO = "rvo"


class ActivityKind(StrEnum):
    MISSION = "mission"
    EVENT = "event"
    PROMOTION = "promotion"
    FAIR = "fair"


@event(
    "nl.teamnl.tinl.activity.held.v1",
    aggregate="activity_id",
    example={
        "activity_id": "tinl-2019-cbw-tilburg",
        "title": "China Business Week",
        "kind": "event",
        "market": "CN",
        "country": "NL",
        "city": "Tilburg",
        "start_date": "2019-05-13",
        "end_date": "2019-05-17",
        "partners": ["bom", "rvo"],
    },
)
class ActivityHeld(DateSpan):
    """A joint TINL mission, event, promotion or fair took place."""

    activity_id: Identifier
    title: NonEmptyStr
    kind: ActivityKind
    market: Market = Field(description="focus market: a country code or 'smart-cities'")
    country: CountryCode = Field(description="where the activity took place")
    city: NonEmptyStr
    partners: NonEmptyUniqueList[TinlPartner] = Field(description="partners that took part")


@event(
    "nl.teamnl.tinl.knowledge.shared.v1",
    aggregate="knowledge_id",
    example={
        "knowledge_id": "ks-2019-07",
        "topic": "Smart city tenders in New York",
        "partners": ["amsterdam-in-business", "rotterdam-partners"],
        "shared_on": "2019-06-03",
    },
)
class KnowledgeShared(EventData):
    """TINL partners shared knowledge with each other."""

    knowledge_id: Identifier
    topic: NonEmptyStr
    partners: NonEmptyUniqueList[TinlPartner]
    shared_on: Day


@event("nl.teamnl.tinl.budget.spent.v1", aggregate="spend_id", example=BUDGET_SPENT_EXAMPLE)
class TinlBudgetSpent(BudgetSpent):
    """TINL spent money from its share of the public budget."""
