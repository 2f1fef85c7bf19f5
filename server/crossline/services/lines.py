"""Conflict lines and their sides, and what facilitators see of them."""

from __future__ import annotations

from dataclasses import dataclass

from crossline.domain import rules
from crossline.domain.consultations import Consultation
from crossline.domain.records import Invitation, Line, Member, Room
from crossline.errors import Conflict, NotFound
from crossline.services.hub import Hub
from crossline.services.onboarding import require
from crossline.storage import consultations as consultation_store
from crossline.storage import invitations, lines, members, rooms


def create_line(hub: Hub, actor: Member, name: str, sides_text: str) -> Line:
    require(actor, "admin")
    name = rules.clean_name(name, "The line's name")
    side_names = rules.parse_sides(sides_text)
    slug = rules.slugify(name)
    with hub.engine.begin() as conn:
        if lines.slug_taken(conn, slug):
            raise Conflict(f"A line called {name!r} already exists.")
        line_id = lines.add_line(conn, slug, name, side_names, hub.clock.now_ms())
        line = lines.get_line(conn, line_id)
    assert line is not None
    return line


@dataclass(frozen=True)
class LinesOverview:
    lines: list[Line]
    staff: list[Member]


def overview(hub: Hub, actor: Member | None) -> LinesOverview:
    """Every line and the hub-wide staff: for facilitators, who run lines (and admins)."""
    require(actor, "facilitator")
    with hub.engine.connect() as conn:
        return LinesOverview(lines.list_lines(conn), [m for m in members.list_members(conn) if m.line_id is None])


def line(hub: Hub, actor: Member | None, line_id: int) -> Line:
    require(actor, "facilitator")
    with hub.engine.connect() as conn:
        found = lines.get_line(conn, line_id)
    if found is None:
        raise NotFound("That line does not exist.")
    return found


@dataclass(frozen=True)
class LineDetails:
    line: Line
    members: list[Member]
    staff: list[Member]
    rooms: list[Room]
    invitations: list[Invitation]
    consultations: list[Consultation]


def details(hub: Hub, actor: Member | None, line_id: int) -> LineDetails:
    """Who is on each side, the rooms, invitations and consultations: what a facilitator needs to
    run the line, and nobody else sees."""
    found = line(hub, actor, line_id)
    with hub.engine.connect() as conn:
        return LineDetails(found, members.list_members(conn, line_id),
                           [m for m in members.list_members(conn) if m.line_id is None], rooms.list_rooms(conn, line_id),
                           invitations.list_invitations(conn, line_id),
                           consultation_store.list_consultations(conn, line_id))
