"""The facts of the minister's letter (``seeds/000_0f97bd9eef7b6442.txt``) as v1 CloudEvents.

From the letter: the 38 named Cities of Opportunity and their tiers, the NLIB missions
(outgoing to Vietnam, China, India, Colombia, Poland; incoming from Bavaria), the TINL
activities (China Business Week in Tilburg, Zaandam, Arnhem and Rotterdam; the Smart City
mission to New York), the Global Stars calls India, Taiwan and Brazil with 32 Dutch proposals
and a 4-5 month lead time, and the eight Werkplaats programmes.

The letter gives no dates, head counts, leads, amounts, SDGs or per-call split of the 32
proposals; those figures below are **illustrative** (listed in ``ILLUSTRATIVE``; the
dashboard says so on the pages that show them), chosen to be plausible and consistent:
lead times within 4-5 months, 2018 spending on pace with and inside the allocations of a
year the letter calls fully operational, the data ending at the letter's date (December
2018) so that the dashboard opens as of then.

Every event has a deterministic ``id`` (``seed-...``) and content, so seeding twice is
idempotent: the services answer a replay with the original receipt.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from teamnl_shared.contract import globalstars, nlib, tinl, werkplaats
from teamnl_shared.contract.registry import CATALOGUE, spec_for
from teamnl_shared.contract.types import SMART_CITIES, BudgetSpent, EventData

BUDGET_SPENT_BY_FAMILY: dict[str, type[EventData]] = {
    spec.family: spec.model for spec in CATALOGUE.values() if issubclass(spec.model, BudgetSpent)
}

SPEC_VERSION = "1.0"

SEED_PARTNERS: dict[str, str] = {
    "nlib": "nlinbusiness",
    "tinl": "rvo",  # RVO hosts TINL and executes Global Stars
    "werkplaats": "de-werkplaats",
}
"""The partner each service's seed events are written as (``source = /partners/<slug>``)."""

SEED_YEAR = 2018  # the year the three initiatives became fully operational
SEED_EVENT_PREFIX = "seed-"
"""Every seed event id starts so: the dashboard marks a reading holding them illustrative."""

ILLUSTRATIVE: tuple[str, ...] = (
    "dates of missions, activities, calls, onboardings, follow-ups and spending",
    "companies, business mixers, leads and converted leads per mission",
    "the split of the 32 Dutch proposals over the three calls",
    "budget amounts (only the allocations are the letter's)",
    "sectors, SDGs and consortium of the Werkplaats programmes",
    "the TINL partners per activity beyond the letter's examples",
)
"""What the seed states that the letter does not."""


# -- the facts (kept as tables: fmt off) ---------------------------------------------------

# fmt: off
CITIES: dict[str, tuple[tuple[str, str], ...]] = {
    "pilot": (
        ("Warsaw", "PL"), ("Munich", "DE"), ("Dubai", "AE"), ("Ho Chi Minh City", "VN"),
        ("Guangzhou/Pearl River Delta", "CN"), ("Mexico City", "MX"),
    ),
    "golden": (
        ("Berlin", "DE"), ("Hamburg", "DE"), ("Düsseldorf", "DE"), ("Paris", "FR"),
        ("Nantes", "FR"), ("London", "GB"), ("Manchester-Liverpool", "GB"), ("Shanghai", "CN"),
        ("Tokyo", "JP"), ("Bangkok", "TH"), ("Singapore", "SG"), ("Kuala Lumpur", "MY"),
        ("Jakarta", "ID"), ("Mumbai", "IN"), ("New York City", "US"), ("Chicago", "US"),
        ("Houston", "US"), ("San Francisco", "US"), ("São Paulo", "BR"),
    ),
    "silver": (
        ("Milan", "IT"), ("Kyiv", "UA"), ("Istanbul", "TR"), ("Moscow", "RU"), ("Seoul", "KR"),
        ("Manila", "PH"), ("Dhaka", "BD"), ("Buenos Aires", "AR"), ("Bogotá", "CO"),
        ("Tangier", "MA"), ("Cairo", "EG"), ("Lagos", "NG"), ("Nairobi", "KE"),
    ),
}
# fmt: on


@dataclass(frozen=True)
class MissionFact:
    code: str
    title: str
    direction: str
    country: str
    city: str
    city_of_opportunity: str | None
    start: date
    days: int
    companies: int
    business_mixers: int
    leads: int
    converted_leads: int


# fmt: off
MISSIONS: tuple[MissionFact, ...] = (
    MissionFact("pl", "Trade mission to Poland", "outgoing", "PL", "Warsaw", "Warsaw",
                date(2018, 3, 12), 3, 22, 1, 31, 2),
    MissionFact("de-by", "Incoming mission from Bavaria", "incoming", "DE", "Munich", "Munich",
                date(2018, 4, 16), 2, 18, 1, 24, 1),
    MissionFact("vn", "Trade mission to Vietnam", "outgoing", "VN", "Ho Chi Minh City",
                "Ho Chi Minh City", date(2018, 4, 9), 5, 35, 1, 42, 3),
    MissionFact("cn", "Trade mission to China", "outgoing", "CN", "Guangzhou",
                "Guangzhou/Pearl River Delta", date(2018, 5, 28), 5, 40, 1, 47, 2),
    MissionFact("co", "Trade mission to Colombia", "outgoing", "CO", "Bogotá", "Bogotá",
                date(2018, 6, 4), 4, 20, 1, 26, 1),
    MissionFact("in", "Trade mission to India", "outgoing", "IN", "Mumbai", "Mumbai",
                date(2018, 11, 19), 5, 30, 1, 38, 0),
)
# fmt: on


@dataclass(frozen=True)
class ActivityFact:
    code: str
    title: str
    kind: str
    market: str
    country: str
    city: str
    start: date
    days: int
    partners: tuple[str, ...]


# fmt: off
ACTIVITIES: tuple[ActivityFact, ...] = (
    ActivityFact("cbw-tilburg", "China Business Week", "event", "CN", "NL", "Tilburg",
                 date(2018, 5, 14), 1, ("bom", "rvo")),
    ActivityFact("cbw-zaandam", "China Business Week", "event", "CN", "NL", "Zaandam",
                 date(2018, 5, 15), 1, ("amsterdam-in-business", "rvo")),
    ActivityFact("cbw-arnhem", "China Business Week", "event", "CN", "NL", "Arnhem",
                 date(2018, 5, 16), 1, ("oost-nl", "rvo")),
    ActivityFact("cbw-rotterdam", "China Business Week", "event", "CN", "NL", "Rotterdam",
                 date(2018, 5, 17), 1, ("rotterdam-partners", "innovationquarter", "rvo")),
    ActivityFact("smart-city-new-york", "Smart City mission New York", "mission", SMART_CITIES,
                 "US", "New York", date(2018, 5, 7), 5,
                 ("rotterdam-partners", "brainport-eindhoven", "amsterdam-in-business", "rvo")),
    ActivityFact("germany-pavilion", "Joint Dutch pavilion, Germany", "fair", "DE", "DE",
                 "Hannover", date(2018, 4, 23), 5,
                 ("brainport-eindhoven", "oost-nl", "economic-board-utrecht", "rvo")),
    ActivityFact("usa-promotion", "Joint promotion USA", "promotion", "US", "US", "Chicago",
                 date(2018, 9, 24), 3, ("amsterdam-in-business", "innovationquarter", "rvo")),
)
# fmt: on


@dataclass(frozen=True)
class CallFact:
    country: str
    theme: str
    negotiation_started_on: date
    opened_on: date
    closed_on: date
    dutch_proposals: int

    @property
    def call_id(self) -> str:
        return f"gs-{self.country.lower()}-{SEED_YEAR}"


# fmt: off
CALLS: tuple[CallFact, ...] = (
    CallFact("IN", "Health: antimicrobial resistance, affordable and accessible care",
             date(2017, 11, 1), date(2018, 1, 15), date(2018, 3, 15), 14),
    CallFact("TW", "Photonics", date(2018, 1, 8), date(2018, 3, 1), date(2018, 5, 25), 10),
    CallFact("BR", "Innovation cooperation", date(2018, 3, 1), date(2018, 5, 1),
             date(2018, 7, 25), 8),
)
# fmt: on
DUTCH_PROPOSALS_TOTAL = 32


@dataclass(frozen=True)
class ProgrammeFact:
    code: str
    title: str
    country: str
    sectors: tuple[str, ...]
    sdgs: tuple[int, ...]
    onboarded_on: date


# The letter's "consortia of Dutch companies and knowledge institutions"; it names no members.
CONSORTIUM = ("Dutch companies", "Dutch knowledge institutions")

# fmt: off
PROGRAMMES: tuple[ProgrammeFact, ...] = (
    ProgrammeFact("agro-logistics-hub-panama", "Agro-logistics hub", "PA",
                  ("agro-food", "logistics"), (2, 9, 17), date(2017, 10, 2)),
    ProgrammeFact("cleaning-the-ganges", "Cleaning the Ganges", "IN",
                  ("water", "waste management"), (6, 14), date(2017, 11, 6)),
    ProgrammeFact("primary-health-care-kenya", "Primary health care", "KE",
                  ("health",), (3,), date(2018, 1, 15)),
    ProgrammeFact("smart-industry-germany", "Smart Industry", "DE",
                  ("high-tech systems", "manufacturing"), (9,), date(2018, 2, 12)),
    ProgrammeFact("rural-health-care-colombia", "Health care for rural development", "CO",
                  ("health", "agro-food"), (3, 10), date(2018, 3, 19)),
    ProgrammeFact("high-tech-farming-china", "High-tech farming", "CN",
                  ("horticulture", "agro-food"), (2, 12), date(2018, 4, 23)),
    # The Gulf region spans several countries; the contract takes one, so the UAE stands in.
    ProgrammeFact("water-energy-food-gulf", "Water-energy-food cooperation, Gulf region", "AE",
                  ("water", "energy", "agro-food"), (2, 6, 7), date(2018, 5, 28)),
    ProgrammeFact("coastal-protection-hoi-an", "Coastal protection Hoi An region", "VN",
                  ("water", "delta technology"), (11, 13, 14), date(2018, 6, 25)),
)
# fmt: on

# fmt: off
# (family, spend code, amount in euro cents, category, spent on) - illustrative amounts.
BUDGET: tuple[tuple[str, str, int, str, date], ...] = (
    ("nlib", "staff-h1", 150_000_000, "staff", date(2018, 6, 30)),
    ("nlib", "missions-h1", 80_000_000, "missions", date(2018, 6, 30)),
    ("nlib", "platform", 60_000_000, "digital platform", date(2018, 9, 30)),
    ("nlib", "missions-h2", 60_000_000, "missions", date(2018, 11, 30)),
    ("nlib", "staff-h2", 200_000_000, "staff", date(2018, 12, 14)),
    ("tinl", "events-h1", 40_000_000, "events", date(2018, 6, 30)),
    ("tinl", "missions-h2", 35_000_000, "missions", date(2018, 10, 31)),
    ("tinl", "events-h2", 45_000_000, "events", date(2018, 12, 14)),
    ("globalstars", "calls-2018", 55_000_000, "subsidy", date(2018, 9, 30)),
    ("globalstars", "calls-2018-h2", 25_000_000, "subsidy", date(2018, 12, 14)),
    ("werkplaats", "staff-h1", 45_000_000, "staff", date(2018, 6, 30)),
    ("werkplaats", "programmes", 50_000_000, "programme support", date(2018, 10, 31)),
    ("werkplaats", "staff-h2", 35_000_000, "staff", date(2018, 12, 14)),
)
# fmt: on

_FAMILY_SERVICE = {
    "nlib": "nlib",
    "tinl": "tinl",
    "globalstars": "tinl",
    "werkplaats": "werkplaats",
}


# -- events -----------------------------------------------------------------------------------


def slug(name: str) -> str:
    """'Guangzhou/Pearl River Delta' -> 'guangzhou-pearl-river-delta', 'Bogotá' -> 'bogota'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = "".join(c if c.isalnum() else " " for c in ascii_name.lower()).split()
    return "-".join(words)


def cloud_event(
    model: type[EventData], event_id: str, data: dict[str, Any], on: date
) -> dict[str, Any]:
    """A structured CloudEvent of the catalogue, written as the seed partner of its service."""
    partner = SEED_PARTNERS[_FAMILY_SERVICE[spec_for(model.TYPE).family]]
    return {
        "specversion": SPEC_VERSION,
        "id": f"{SEED_EVENT_PREFIX}{event_id}",
        "source": f"/partners/{partner}",
        "type": model.TYPE,
        "time": f"{on.isoformat()}T12:00:00Z",
        "datacontenttype": "application/json",
        "data": data,
    }


def city_events() -> Iterator[dict[str, Any]]:
    for tier, cities in CITIES.items():
        for city, country in cities:
            city_id = slug(city)
            yield cloud_event(
                nlib.CityProgrammeUpdated,
                f"city-{city_id}",
                {
                    "city_id": city_id,
                    "city": city,
                    "country": country,
                    "tier": tier,
                    "soft_landing": "active" if tier == "pilot" else "not_started",
                    "updated_on": "2018-11-01",
                },
                date(2018, 11, 1),
            )


def mission_events(mission: MissionFact) -> Iterator[dict[str, Any]]:
    mission_id = f"m-{SEED_YEAR}-{mission.code}"
    end = date.fromordinal(mission.start.toordinal() + mission.days - 1)
    fields = {
        "mission_id": mission_id,
        "title": mission.title,
        "direction": mission.direction,
        "country": mission.country,
        "city": mission.city,
        "start_date": mission.start.isoformat(),
        "end_date": end.isoformat(),
        "city_of_opportunity": mission.city_of_opportunity,
    }
    planned_on = date.fromordinal(mission.start.toordinal() - 60)
    yield cloud_event(nlib.MissionPlanned, f"{mission_id}-planned", fields, planned_on)
    yield cloud_event(
        nlib.MissionHeld,
        f"{mission_id}-held",
        {
            **fields,
            "companies": mission.companies,
            "business_mixers": mission.business_mixers,
            "leads": mission.leads,
        },
        end,
    )
    followup_on = date.fromordinal(end.toordinal() + 28)
    yield cloud_event(
        nlib.MissionFollowupHeld,
        f"{mission_id}-ws1",
        {
            "mission_id": mission_id,
            "followup_id": f"{mission_id}-ws1",
            "held_on": followup_on.isoformat(),
            "kind": "work_session",
            "companies": mission.companies * 2 // 3,
        },
        followup_on,
    )
    for number in range(1, mission.converted_leads + 1):
        lead_id = f"lead-{mission_id}-{number:02d}"
        converted_on = date.fromordinal(followup_on.toordinal() + 30 * number)
        yield cloud_event(
            nlib.LeadConverted,
            lead_id,
            {
                "lead_id": lead_id,
                "mission_id": mission_id,
                "company": f"SME {number} of the {mission.title.lower()}",
                "contract_value_cents": 25_000_000 * number,
                "converted_on": converted_on.isoformat(),
            },
            converted_on,
        )


def activity_events() -> Iterator[dict[str, Any]]:
    for activity in ACTIVITIES:
        activity_id = f"tinl-{SEED_YEAR}-{activity.code}"
        end = date.fromordinal(activity.start.toordinal() + activity.days - 1)
        yield cloud_event(
            tinl.ActivityHeld,
            activity_id,
            {
                "activity_id": activity_id,
                "title": activity.title,
                "kind": activity.kind,
                "market": activity.market,
                "country": activity.country,
                "city": activity.city,
                "start_date": activity.start.isoformat(),
                "end_date": end.isoformat(),
                "partners": list(activity.partners),
            },
            end,
        )
    yield cloud_event(
        tinl.KnowledgeShared,
        f"ks-{SEED_YEAR}-smart-mobility",
        {
            "knowledge_id": f"ks-{SEED_YEAR}-smart-mobility",
            "topic": "Smart mobility and circular economy after the New York mission",
            "partners": ["rotterdam-partners", "brainport-eindhoven", "amsterdam-in-business"],
            "shared_on": "2018-06-18",
        },
        date(2018, 6, 18),
    )


def call_events(call: CallFact) -> Iterator[dict[str, Any]]:
    call_id = call.call_id
    yield cloud_event(
        globalstars.CallOpened,
        f"{call_id}-opened",
        {
            "call_id": call_id,
            "country": call.country,
            "theme": call.theme,
            "negotiation_started_on": call.negotiation_started_on.isoformat(),
            "opened_on": call.opened_on.isoformat(),
        },
        call.opened_on,
    )
    window = call.closed_on.toordinal() - call.opened_on.toordinal()
    for number in range(1, call.dutch_proposals + 1):
        proposal_id = f"{call_id}-p{number:02d}"
        submitted_on = date.fromordinal(
            call.opened_on.toordinal() + window * number // (call.dutch_proposals + 1)
        )
        yield cloud_event(
            globalstars.ProposalSubmitted,
            proposal_id,
            {
                "proposal_id": proposal_id,
                "call_id": call_id,
                "lead_organisation": f"Dutch applicant {call.country}-{number:02d}",
                "dutch": True,
                "submitted_on": submitted_on.isoformat(),
            },
            submitted_on,
        )
    yield cloud_event(
        globalstars.CallClosed,
        f"{call_id}-closed",
        {
            "call_id": call_id,
            "closed_on": call.closed_on.isoformat(),
            "dutch_proposals": call.dutch_proposals,
        },
        call.closed_on,
    )


def programme_events() -> Iterator[dict[str, Any]]:
    for programme in PROGRAMMES:
        project_id = f"wp-{programme.code}"
        yield cloud_event(
            werkplaats.ProjectOnboarded,
            project_id,
            {
                "project_id": project_id,
                "title": programme.title,
                "country": programme.country,
                "sectors": list(programme.sectors),
                "sdgs": list(programme.sdgs),
                "consortium_members": list(CONSORTIUM),
                "onboarded_on": programme.onboarded_on.isoformat(),
            },
            programme.onboarded_on,
        )


def budget_events() -> Iterator[dict[str, Any]]:
    for family, code, cents, category, spent_on in BUDGET:
        spend_id = f"{family}-{SEED_YEAR}-{code}"
        yield cloud_event(
            BUDGET_SPENT_BY_FAMILY[family],
            spend_id,
            {
                "spend_id": spend_id,
                "year": SEED_YEAR,
                "amount_cents": cents,
                "category": category,
                "spent_on": spent_on.isoformat(),
            },
            spent_on,
        )


def seed_events() -> dict[str, list[dict[str, Any]]]:
    """Per service (``nlib``, ``tinl``, ``werkplaats``), its seed events in sending order."""
    events: dict[str, list[dict[str, Any]]] = {service: [] for service in SEED_PARTNERS}
    events["nlib"] += city_events()
    for mission in MISSIONS:
        events["nlib"] += mission_events(mission)
    events["tinl"] += activity_events()
    for call in CALLS:
        events["tinl"] += call_events(call)
    events["werkplaats"] += programme_events()
    for event in budget_events():
        family = spec_for(event["type"]).family
        events[_FAMILY_SERVICE[family]].append(event)
    return events
