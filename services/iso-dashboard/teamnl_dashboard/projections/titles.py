"""A short human title per event, kept in the ``events`` projection for the live feed.

The event's own ``title`` when its data has one (missions, TINL activities, Werkplaats
projects); otherwise a label built from the data, per event type (the type's name without
family and version, e.g. ``call.closed``). Titles are plain text: the pages escape them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from teamnl_shared.contract.envelope import Event

MAX_LENGTH = 300

LABELS: dict[str, str] = {
    "budget.spent": "Budget spent: {category} ({year})",
    "call.opened": "Call opened: {country}, {theme}",
    "call.closed": "Call {call_id} closed with {dutch_proposals} Dutch proposals",
    "proposal.submitted": "Proposal by {lead_organisation} to call {call_id}",
    "city.programme.updated": "{city}: {tier} city, soft landing {soft_landing}",
    "company.supported": "{company} supported ({kind})",
    "lead.converted": "Lead converted: {company}",
    "mission.followup.held": "Follow-up of mission {mission_id} ({kind})",
    "knowledge.shared": "Knowledge shared: {topic}",
    "consortium.member.joined": "{member} joined project {project_id}",
    "milestone.reached": "Project {project_id}: {milestone}",
    "project.graduated": "Project {project_id} graduated",
    "project.stopped": "Project {project_id} stopped: {reason}",
}


@cache
def _name(event_type: str) -> str:
    """``nl.teamnl.<family>.<name...>.v1`` -> ``<name...>``."""
    return ".".join(event_type.split(".")[3:-1])


def event_title(event: Event) -> str:
    # the data's fields as validated, read in place: a `model_dump` copied every field of
    # every event projected (the labels name top-level fields only, never a nested model)
    data: dict[str, Any] = vars(event.data)
    title = data.get("title")
    if not title:
        name = _name(event.type)
        template = LABELS.get(name)
        try:
            title = template.format_map(data) if template else None
        except (KeyError, IndexError, ValueError):
            title = None
        title = title or f"{name.replace('.', ' ').capitalize()}: {event.subject}"
    return str(title)[:MAX_LENGTH]
