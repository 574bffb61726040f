"""The v1 event contract: the catalogue's models, registry, topics and exported documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from teamnl_shared.contract import export
from teamnl_shared.contract.ops import PartnerQualityReported
from teamnl_shared.contract.registry import (
    CATALOGUE,
    FAMILIES,
    OPS_FAMILY,
    UnknownEventType,
    aggregate_id,
    parse_data,
    spec_for,
    specs_for_family,
)
from teamnl_shared.contract.topics import (
    ALL_EVENT_TOPICS,
    TOPICS,
    deadletter_topic,
    topic_for,
)

MISSION_HELD = "nl.teamnl.nlib.mission.held.v1"
ACTIVITY_HELD = "nl.teamnl.tinl.activity.held.v1"
PROJECT_ONBOARDED = "nl.teamnl.werkplaats.project.onboarded.v1"
CALL_OPENED = "nl.teamnl.globalstars.call.opened.v1"


def example_with(event_type: str, **changes: Any) -> dict[str, Any]:
    return {**spec_for(event_type).example, **changes}


def refused_fields(event_type: str, data: dict[str, Any]) -> set[Any]:
    with pytest.raises(ValidationError) as refused:
        parse_data(event_type, data)
    return {error["loc"][0] for error in refused.value.errors() if error["loc"]}


@pytest.mark.parametrize("event_type", sorted(CATALOGUE))
def test_every_example_is_valid_data_and_names_its_aggregate(event_type: str) -> None:
    spec = spec_for(event_type)
    data = parse_data(event_type, spec.example)
    assert isinstance(data, spec.model)
    assert aggregate_id(event_type, data) == spec.example[spec.aggregate]


def test_the_catalogue_covers_the_minimum_of_the_domain() -> None:
    names = {spec.type.removeprefix(f"nl.teamnl.{spec.family}.") for spec in CATALOGUE.values()}
    assert {
        "mission.planned.v1",
        "mission.held.v1",
        "mission.followup.held.v1",
        "lead.converted.v1",
        "city.programme.updated.v1",
        "company.supported.v1",
        "budget.spent.v1",
        "activity.held.v1",
        "knowledge.shared.v1",
        "call.opened.v1",
        "proposal.submitted.v1",
        "call.closed.v1",
        "project.onboarded.v1",
        "consortium.member.joined.v1",
        "milestone.reached.v1",
        "project.graduated.v1",
        "project.stopped.v1",
        "partner.quality.reported.v1",
    } == names
    assert {f"nl.teamnl.{family}.budget.spent.v1" for family in FAMILIES} <= CATALOGUE.keys()
    assert all(specs_for_family(family) for family in FAMILIES)


@pytest.mark.parametrize(
    ("event_type", "changes", "field"),
    [
        (MISSION_HELD, {"country": "XX"}, "country"),
        (MISSION_HELD, {"country": "nl"}, "country"),
        (MISSION_HELD, {"end_date": "2019-04-01"}, "end_date"),
        (MISSION_HELD, {"start_date": 1554681600}, "start_date"),
        (MISSION_HELD, {"leads": "37"}, "leads"),
        (MISSION_HELD, {"companies": -1}, "companies"),
        (MISSION_HELD, {"direction": "sideways"}, "direction"),
        (MISSION_HELD, {"attendees": 3}, "attendees"),
        (PROJECT_ONBOARDED, {"sdgs": [18]}, "sdgs"),
        (PROJECT_ONBOARDED, {"sdgs": [6, 6]}, "sdgs"),
        (PROJECT_ONBOARDED, {"sdgs": []}, "sdgs"),
        (PROJECT_ONBOARDED, {"consortium_members": []}, "consortium_members"),
        (PROJECT_ONBOARDED, {"project_id": "has space"}, "project_id"),
        ("nl.teamnl.nlib.budget.spent.v1", {"amount_cents": -1}, "amount_cents"),
        (
            "nl.teamnl.nlib.lead.converted.v1",
            {"contract_value_cents": 12.5},
            "contract_value_cents",
        ),
        (ACTIVITY_HELD, {"partners": ["kvk"]}, "partners"),
        (ACTIVITY_HELD, {"partners": ["bom", "bom"]}, "partners"),
        (ACTIVITY_HELD, {"market": "smart-city"}, "market"),
        (ACTIVITY_HELD, {"market": "XX"}, "market"),
        (CALL_OPENED, {"opened_on": "2017-12-31"}, "opened_on"),
        ("nl.teamnl.globalstars.proposal.submitted.v1", {"dutch": "yes"}, "dutch"),
    ],
)
def test_invalid_data_is_refused_naming_the_field(
    event_type: str, changes: dict[str, Any], field: str
) -> None:
    assert field in refused_fields(event_type, example_with(event_type, **changes))


def test_a_missing_field_is_refused_naming_it() -> None:
    data = example_with(MISSION_HELD)
    del data["mission_id"]
    assert refused_fields(MISSION_HELD, data) == {"mission_id"}


def test_smart_cities_is_a_market_as_well_as_a_country() -> None:
    parse_data(ACTIVITY_HELD, example_with(ACTIVITY_HELD, market="smart-cities"))
    parse_data(ACTIVITY_HELD, example_with(ACTIVITY_HELD, market="US"))


def test_json_bytes_are_parsed_like_a_dict() -> None:
    example = spec_for(MISSION_HELD).example
    assert parse_data(MISSION_HELD, json.dumps(example).encode()) == parse_data(
        MISSION_HELD, example
    )


def test_event_data_is_immutable() -> None:
    data = parse_data(MISSION_HELD, spec_for(MISSION_HELD).example)
    with pytest.raises(ValidationError):
        data.leads = 0  # type: ignore[attr-defined]


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(UnknownEventType):
        parse_data("nl.teamnl.nlib.mission.cancelled.v1", {})
    with pytest.raises(KeyError):
        spec_for("nl.teamnl.nlib.mission.held.v2")


def test_aggregate_id_refuses_data_of_another_type() -> None:
    data = parse_data(MISSION_HELD, spec_for(MISSION_HELD).example)
    assert aggregate_id(MISSION_HELD, data) == "m-2019-vn-01"
    with pytest.raises(TypeError):
        aggregate_id(ACTIVITY_HELD, data)


def test_proposals_are_keyed_by_their_call() -> None:
    event_type = "nl.teamnl.globalstars.proposal.submitted.v1"
    data = parse_data(event_type, spec_for(event_type).example)
    assert aggregate_id(event_type, data) == "gs-in-2018"


def test_each_family_publishes_on_its_own_topic() -> None:
    assert topic_for(MISSION_HELD) == "teamnl.nlib.events"
    assert topic_for(CALL_OPENED) == "teamnl.globalstars.events"
    assert {topic_for(event_type) for event_type in CATALOGUE} == set(ALL_EVENT_TOPICS)
    assert tuple(TOPICS) == (*FAMILIES, OPS_FAMILY)
    assert topic_for(PartnerQualityReported.TYPE) == "teamnl.ops.events"
    with pytest.raises(UnknownEventType):
        topic_for("nl.teamnl.nlib.unknown.v1")


def test_deadletter_topic_per_consumer_group() -> None:
    assert deadletter_topic("dashboard") == "teamnl.deadletter.dashboard"
    with pytest.raises(ValueError):
        deadletter_topic("bad group/name")


def test_export_check_passes_on_fresh_output_and_fails_on_an_altered_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export.main(["--out", str(tmp_path)]) == 0
    assert export.main(["--check", "--out", str(tmp_path)]) == 0

    schema = tmp_path / "schemas" / f"{MISSION_HELD}.json"
    schema.write_text(schema.read_text().replace("outgoing", "abroad"))
    (tmp_path / "asyncapi.yaml").unlink()
    (tmp_path / "schemas" / "nl.teamnl.nlib.old.v1.json").write_text("{}")
    capsys.readouterr()

    assert export.main(["--check", "--out", str(tmp_path)]) == 1
    report = capsys.readouterr().err
    assert f"stale: schemas/{MISSION_HELD}.json" in report
    assert "missing: asyncapi.yaml" in report
    assert "extra: schemas/nl.teamnl.nlib.old.v1.json" in report


def test_exported_schema_describes_the_data_with_a_valid_example(tmp_path: Path) -> None:
    export.write(tmp_path)
    schema = json.loads((tmp_path / "schemas" / f"{ACTIVITY_HELD}.json").read_text())
    assert schema["$id"] == export.schema_id(ACTIVITY_HELD)
    assert schema["title"] == ACTIVITY_HELD
    assert schema["additionalProperties"] is False
    parse_data(ACTIVITY_HELD, schema["examples"][0])


def test_asyncapi_has_a_channel_per_topic_and_a_message_per_type() -> None:
    document = export.asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    assert {channel["address"] for channel in document["channels"].values()} == set(
        ALL_EVENT_TOPICS
    )
    assert set(document["components"]["messages"]) == set(CATALOGUE)
    assert {operation["action"] for operation in document["operations"].values()} == {"send"}


def test_the_repository_copy_is_up_to_date() -> None:
    assert export.check(export.DEFAULT_DOCS_DIR) == []
