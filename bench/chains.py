"""Dependent event chains for the dashboard's load: the event types that need others before
them, which the independent events of :mod:`bench.events` never send.

A chain is one aggregate's life, its events in the order the services accept them and by
their rules: a mission planned, held, then its follow-ups (on or after its end) and its
converted leads (no more than it reported); a Global Stars call opened, its proposals, its
closing (counting its Dutch proposals); a Werkplaats project onboarded, its milestones and
consortium joins (never past ``MAX_CONSORTIUM_MEMBERS`` members), then for some its
graduation or its stop. One chain of a kind in ``LARGE_EVERY`` is large: the reads of one
item grow with it.

Chains start over the ``YEARS`` before today; an event's time is the day of its fact, and
what would lie after today is left off (a chain's beginning is a valid chain too). A load's
chain events go in the order of their days, as a deployment's log holds them. A chain's
events share their aggregate's key, so they reach one partition in order; a converted lead
is keyed by its own id (the catalogue's), so it follows its mission in the load only.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bench.events import BenchEvent
from teamnl_shared.contract import globalstars, nlib, werkplaats
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.contract.topics import PUBLISHED_BY

YEARS = 6
LARGE_EVERY = 50
"""One chain of a kind in this many is large: a mission with many follow-ups and converted
leads, a call with the letter's 32 proposals, a project whose consortium reaches the most
members one holds."""

TYPES = (
    nlib.MissionPlanned.TYPE,
    nlib.MissionHeld.TYPE,
    nlib.MissionFollowupHeld.TYPE,
    nlib.LeadConverted.TYPE,
    globalstars.CallOpened.TYPE,
    globalstars.ProposalSubmitted.TYPE,
    globalstars.CallClosed.TYPE,
    werkplaats.ProjectOnboarded.TYPE,
    werkplaats.MilestoneReached.TYPE,
    werkplaats.ConsortiumMemberJoined.TYPE,
    werkplaats.ProjectGraduated.TYPE,
    werkplaats.ProjectStopped.TYPE,
)
"""Every type a chain may hold (their topics are the bench's too)."""

# (country, city, City of Opportunity): the letter's missions and some of its cities. None
# in India: every independent project of the load is onboarded there (the catalogue's
# example), 150,000 at full size, and a mission held in a country makes the isolated-project
# rule judge again each project there: a one-country portfolio no deployment has.
MISSION_PLACES = (
    ("VN", "Ho Chi Minh City", "Ho Chi Minh City"),
    ("CN", "Guangzhou", "Guangzhou/Pearl River Delta"),
    ("ID", "Jakarta", "Jakarta"),
    ("CO", "Bogotá", "Bogotá"),
    ("PL", "Warsaw", "Warsaw"),
    ("US", "Houston", "Houston"),
    ("KE", "Nairobi", "Nairobi"),
    ("BR", "Recife", None),
)
# third countries without a Eureka instrument, as Global Stars calls are
CALL_PLACES = (
    ("IN", "Health: antimicrobial resistance, affordable care"),
    ("TW", "Photonics"),
    ("BR", "Agri-food and bio-based economy"),
    ("VN", "Water management"),
    ("ID", "Circular economy"),
)
# the Werkplaats programmes' countries and sectors
PROJECT_PLACES = (
    ("PA", "Agro-logistics hub", ("logistics", "agrifood")),
    ("IN", "Cleaning the Ganges", ("water", "waste management")),
    ("KE", "Primary health care", ("health",)),
    ("CO", "Health care for rural development", ("health", "rural development")),
    ("CN", "High-tech farming", ("agrifood", "horticulture")),
    ("AE", "Water-energy-food", ("water", "energy", "agrifood")),
    ("VN", "Coastal protection Hoi An", ("water", "coastal protection")),
)
MILESTONES = (
    "feasibility study",
    "consortium agreement",
    "financing secured",
    "pilot started",
    "first delivery",
    "local partner contracted",
)


@dataclass(frozen=True)
class Fact:
    """One event of a chain before it is rendered: its day, its type, its data."""

    day: date
    type: str
    data: dict[str, Any]


def events(run_id: str, now: datetime, count: int) -> Iterator[BenchEvent]:
    """`count` events of the load's chains (missions, calls and projects in turn, the last
    cut short to make `count`), in the order of their days, each chain's own in its order.
    A deployment's log holds them so: a mission's planned and held events months apart,
    many events between, not in one fetch of the dashboard's consumer as a chain's events
    one after the other would be. The n-th event's id is ``<run_id>-chain-<n>`` (see
    :func:`id_prefix`)."""
    facts: list[tuple[Fact, int]] = []
    for index in itertools.count():
        if len(facts) >= count:
            break
        facts += [(fact, index) for fact in chain(run_id, index, now.date())]
    del facts[count:]
    facts.sort(key=lambda item: item[0].day)  # stable: a chain's events of one day in order
    for number, (fact, index) in enumerate(facts):
        yield _rendered(fact, f"{id_prefix(run_id)}{number:09d}", index, now)


def id_prefix(run_id: str) -> str:
    """What every chain event's id of the load `run_id` starts with."""
    return f"{run_id}-chain-"


def takes_slot(index: int, share: float) -> bool:
    """Whether the `index`-th event of a load is a chain's, `share` of them spread evenly."""
    return int((index + 1) * share) > int(index * share)


def chain(run_id: str, index: int, today: date) -> list[Fact]:
    """The `index`-th chain of a load: a mission, a call or a project (in turn), started on a
    day of the ``YEARS`` before `today`, without what would lie after it."""
    rng = random.Random(f"{run_id}-{index}")  # the same chain for the same load, every run
    make = _KINDS[index % len(_KINDS)]
    number = index // len(_KINDS)
    start = today - timedelta(days=rng.randrange(YEARS * 365))
    facts = make(f"{run_id}-{make.__name__.strip('_')}-{number:07d}", rng, start, number)
    return list(itertools.takewhile(lambda fact: fact.day <= today, facts))


def _mission(mission_id: str, rng: random.Random, start: date, number: int) -> list[Fact]:
    country, city, city_of_opportunity = rng.choice(MISSION_PLACES)
    end = start + timedelta(days=rng.randint(2, 6))
    mission: dict[str, Any] = {
        "mission_id": mission_id,
        "title": f"Trade mission to {city}",
        "direction": "outgoing",
        "country": country,
        "city": city,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
    }
    if city_of_opportunity:
        mission["city_of_opportunity"] = city_of_opportunity
    large = number % LARGE_EVERY == LARGE_EVERY - 1
    leads = rng.randint(30, 60) if large else rng.randint(0, 40)
    followups = [
        _on(
            _after(end, rng, 7, 120),
            nlib.MissionFollowupHeld.TYPE,
            "held_on",
            {
                "mission_id": mission_id,
                "followup_id": f"{mission_id}-fu{n}",
                "kind": rng.choice(("work_session", "other")),
                "companies": rng.randint(3, 30),
            },
        )
        for n in range(12 if large else rng.choice((0, 1, 1, 2, 3)))
    ]
    conversions = [
        _on(
            _after(end, rng, 30, 500),
            nlib.LeadConverted.TYPE,
            "converted_on",
            {
                "lead_id": f"{mission_id}-lead{n}",
                "mission_id": mission_id,
                "company": f"Bench Exporter {n} B.V.",
                "contract_value_cents": rng.randint(1_000_000, 500_000_000),
            },
        )
        for n in range(min(leads, 30 if large else rng.randint(0, 4)))
    ]
    held = {
        **mission,
        "companies": rng.randint(5, 40),
        "business_mixers": rng.randint(0, 3),
        "leads": leads,
    }
    return [
        Fact(start - timedelta(days=rng.randint(30, 120)), nlib.MissionPlanned.TYPE, mission),
        Fact(end, nlib.MissionHeld.TYPE, held),
        *sorted(followups + conversions, key=_day),
    ]


def _call(call_id: str, rng: random.Random, start: date, number: int) -> list[Fact]:
    country, theme = rng.choice(CALL_PLACES)
    opened = start + timedelta(days=rng.randint(20, 90))
    large = number % LARGE_EVERY == LARGE_EVERY - 1
    proposals = [
        _on(
            _after(opened, rng, 1, 60),
            globalstars.ProposalSubmitted.TYPE,
            "submitted_on",
            {
                "proposal_id": f"{call_id}-p{n:02d}",
                "call_id": call_id,
                "lead_organisation": f"Bench Institute {n}",
                "dutch": rng.random() < 0.7,
            },
        )
        for n in range(32 if large else rng.randint(2, 10))
    ]
    proposals.sort(key=_day)
    # 80 to 240 days after the negotiation started: some beyond the 5 months a call may take
    closed_on = max(proposals[-1].day, _after(opened, rng, 60, 150))
    dutch = sum(1 for fact in proposals if fact.data["dutch"])
    opening = {
        "call_id": call_id,
        "country": country,
        "theme": theme,
        "negotiation_started_on": start.isoformat(),
        "opened_on": opened.isoformat(),
    }
    closing = {"call_id": call_id, "dutch_proposals": dutch}
    return [
        Fact(opened, globalstars.CallOpened.TYPE, opening),
        *proposals,
        _on(closed_on, globalstars.CallClosed.TYPE, "closed_on", closing),
    ]


def _project(project_id: str, rng: random.Random, start: date, number: int) -> list[Fact]:
    country, title, sectors = rng.choice(PROJECT_PLACES)
    founders = [f"Bench Founder {n}" for n in range(rng.randint(2, 4))]
    large = number % LARGE_EVERY == LARGE_EVERY - 1
    joins = werkplaats.MAX_CONSORTIUM_MEMBERS - len(founders) if large else rng.randint(0, 5)
    milestones = rng.sample(MILESTONES, len(MILESTONES) if large else rng.randint(1, 4))
    reached = [
        _on(
            _after(start, rng, 14, 900),
            werkplaats.MilestoneReached.TYPE,
            "reached_on",
            {"project_id": project_id, "milestone": milestone},
        )
        for milestone in milestones
    ]
    joined = [
        _on(
            _after(start, rng, 1, 900),
            werkplaats.ConsortiumMemberJoined.TYPE,
            "joined_on",
            {"project_id": project_id, "member": f"Bench Member {n}"},
        )
        for n in range(joins)
    ]
    later = sorted(reached + joined, key=_day)
    onboarded = {
        "project_id": project_id,
        "title": title,
        "country": country,
        "sectors": list(sectors),
        "sdgs": sorted(rng.sample(range(1, 18), rng.randint(1, 3))),
        "consortium_members": founders,
        "onboarded_on": start.isoformat(),
    }
    return [
        Fact(start, werkplaats.ProjectOnboarded.TYPE, onboarded),
        *later,
        *_ending(project_id, rng, later[-1].day),
    ]


def _ending(project_id: str, rng: random.Random, last: date) -> list[Fact]:
    """A project's end, after its last milestone or join: one in four graduates, one in ten
    stops, the rest go on."""
    day, draw = _after(last, rng, 30, 365), rng.random()
    if draw < 0.25:
        return [
            _on(day, werkplaats.ProjectGraduated.TYPE, "graduated_on", {"project_id": project_id})
        ]
    if draw < 0.35:
        stop = {"project_id": project_id, "reason": "no financing found"}
        return [_on(day, werkplaats.ProjectStopped.TYPE, "stopped_on", stop)]
    return []


_KINDS: tuple[Callable[[str, random.Random, date, int], list[Fact]], ...] = (
    _mission,
    _call,
    _project,
)


def _after(day: date, rng: random.Random, least: int, most: int) -> date:
    return day + timedelta(days=rng.randint(least, most))


def _on(day: date, event_type: str, field: str, data: dict[str, Any]) -> Fact:
    """A fact of `day`, which its data's `field` names."""
    return Fact(day, event_type, {**data, field: day.isoformat()})


def _day(fact: Fact) -> date:
    return fact.day


def _rendered(fact: Fact, event_id: str, index: int, now: datetime) -> BenchEvent:
    spec = spec_for(fact.type)
    service = PUBLISHED_BY[spec.family]
    # times differ within a day too: "latest events" reads do not sort a run of ties
    moment = datetime.combine(fact.day, time(8), UTC) + timedelta(seconds=index % 36_000)
    moment = min(moment, now.astimezone(UTC))  # today's: not later than now
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return BenchEvent(service, event_id, fact.type, fact.data[spec.aggregate], fact.data, stamp)
