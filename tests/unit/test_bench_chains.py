"""The bench's dependent chains: every event valid as the dashboard reads it, each chain in
the order (and by the rules) the initiative services accept it, dated over the years."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from bench import chains
from bench.events import BenchEvent
from bench.kafka_io import loaded_events
from teamnl_shared.contract import globalstars, nlib, werkplaats
from teamnl_shared.contract.envelope import parse_kafka

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


class Services:
    """The initiative services' rules for the chains' types, applied to events in order."""

    def __init__(self) -> None:
        self.missions: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.seen: set[str] = set()

    def accept(self, event: BenchEvent) -> None:
        data = {k: date.fromisoformat(v) if k.endswith(("_on", "_date")) else v
                for k, v in event.data.items()}  # fmt: skip
        getattr(self, event.type.split(".", 2)[2].rsplit(".", 1)[0].replace(".", "_"))(data)

    def _once(self, key: str) -> None:
        assert key not in self.seen, f"{key} twice"
        self.seen.add(key)

    def nlib_mission_planned(self, d: dict[str, Any]) -> None:
        assert d["mission_id"] not in self.missions
        self.missions[d["mission_id"]] = {**d, "status": "planned", "converted": 0}

    def nlib_mission_held(self, d: dict[str, Any]) -> None:
        mission = self.missions[d["mission_id"]]
        assert mission["status"] == "planned" and mission["start_date"] == d["start_date"]
        mission.update(d, status="held")

    def nlib_mission_followup_held(self, d: dict[str, Any]) -> None:
        mission = self.missions[d["mission_id"]]
        assert mission["status"] == "held" and d["held_on"] >= mission["end_date"]
        self._once(d["followup_id"])

    def nlib_lead_converted(self, d: dict[str, Any]) -> None:
        mission = self.missions[d["mission_id"]]
        assert mission["status"] == "held" and d["converted_on"] >= mission["start_date"]
        mission["converted"] += 1
        assert mission["converted"] <= mission["leads"]
        self._once(d["lead_id"])

    def globalstars_call_opened(self, d: dict[str, Any]) -> None:
        assert d["call_id"] not in self.calls
        self.calls[d["call_id"]] = {**d, "dutch": 0, "open": True}

    def globalstars_proposal_submitted(self, d: dict[str, Any]) -> None:
        call = self.calls[d["call_id"]]
        assert call["open"] and d["submitted_on"] >= call["opened_on"]
        call["dutch"] += d["dutch"]
        self._once(d["proposal_id"])

    def globalstars_call_closed(self, d: dict[str, Any]) -> None:
        call = self.calls[d["call_id"]]
        assert call["open"] and d["closed_on"] >= call["opened_on"]
        assert d["dutch_proposals"] == call["dutch"]
        call["open"] = False

    def werkplaats_project_onboarded(self, d: dict[str, Any]) -> None:
        assert d["project_id"] not in self.projects
        self.projects[d["project_id"]] = {**d, "members": set(d["consortium_members"])}

    def _active(self, d: dict[str, Any], day: date) -> dict[str, Any]:
        project = self.projects[d["project_id"]]
        assert "ended" not in project and day >= project["onboarded_on"]
        return project

    def werkplaats_consortium_member_joined(self, d: dict[str, Any]) -> None:
        members = self._active(d, d["joined_on"])["members"]
        assert d["member"] not in members
        members.add(d["member"])
        assert len(members) <= werkplaats.MAX_CONSORTIUM_MEMBERS

    def werkplaats_milestone_reached(self, d: dict[str, Any]) -> None:
        self._active(d, d["reached_on"])
        self._once(f"{d['project_id']}/{d['milestone']}")

    def werkplaats_project_graduated(self, d: dict[str, Any]) -> None:
        self._active(d, d["graduated_on"])["ended"] = True

    def werkplaats_project_stopped(self, d: dict[str, Any]) -> None:
        self._active(d, d["stopped_on"])["ended"] = True


def _chained(count: int) -> list[BenchEvent]:
    return list(chains.events("r", NOW, count))


def test_every_chain_event_is_valid_as_the_dashboard_reads_it() -> None:
    loaded = _chained(3_000)
    for event in loaded:
        key, value, headers = event.kafka_record()
        parsed = parse_kafka(headers, value)
        assert parsed.type == event.type and key == parsed.subject.encode()
    assert {e.type for e in loaded} == set(chains.TYPES)
    assert len({e.id for e in loaded}) == len(loaded)
    assert all(e.id.startswith(chains.id_prefix("r")) for e in loaded)


def test_each_chain_is_in_the_order_and_by_the_rules_the_services_accept_it() -> None:
    services = Services()
    for event in _chained(3_000):
        services.accept(event)
    held = [m for m in services.missions.values() if m["status"] == "held"]
    assert held and any(not call["open"] for call in services.calls.values())
    largest = max(len(p["members"]) for p in services.projects.values())
    assert largest == werkplaats.MAX_CONSORTIUM_MEMBERS


def test_chain_events_go_in_the_order_of_their_days_over_the_years_before_today() -> None:
    loaded = _chained(3_000)
    assert [e.time for e in loaded] == sorted(e.time for e in loaded)
    planned = {e.subject: i for i, e in enumerate(loaded) if e.type == nlib.MissionPlanned.TYPE}
    apart = [
        i - planned[e.subject] for i, e in enumerate(loaded) if e.type == nlib.MissionHeld.TYPE
    ]
    assert statistics.median(apart) > 50  # months apart, many events between, as in a log
    assert max(datetime.fromisoformat(e.time) for e in loaded) <= NOW
    assert len({e.time[:4] for e in loaded}) >= chains.YEARS - 1
    leads = [e for e in loaded if e.type == nlib.LeadConverted.TYPE]
    assert leads and all(e.subject == e.data["lead_id"] for e in leads)  # the catalogue's key


def test_a_share_of_a_load_is_chains_and_the_rest_the_independent_events_as_before() -> None:
    mixed = list(loaded_events("r", 1_000, history_every=10, now=NOW, chain_share=0.2))
    plain = list(loaded_events("r", 800, history_every=10, now=NOW))
    chained = [e for e in mixed if e.id.startswith(chains.id_prefix("r"))]
    assert len(mixed) == 1_000 and len(chained) == 200
    assert [e for e in mixed if e not in chained] == plain
    assert chained == _chained(200)
    gaps = Counter(b - a for a, b in itertools.pairwise(mixed.index(e) for e in chained))
    assert set(gaps) == {5}  # spread evenly through the load
    assert globalstars.CallOpened.TYPE in {e.type for e in chained}
