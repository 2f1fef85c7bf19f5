"""Rooms made from policy templates: created on Synapse by the facilitator's own account."""

from __future__ import annotations

from crossline.domain import rules
from crossline.domain.records import Member, Room
from crossline.errors import InvalidInput, NotFound
from crossline.services.hub import Hub
from crossline.services.onboarding import require
from crossline.storage import lines, members, rooms
from crossline_policies.rooms import Invitee, build_create_room_request

ACTING_TOKEN_LIFETIME_MS = 120_000


async def create_room(
    hub: Hub, facilitator: Member, line_id: int, template_name: str, name: str, topic: str, member_ids: list[int]
) -> Room:
    require(facilitator, "facilitator")
    template = hub.room_templates.get(template_name)
    if template is None:
        raise InvalidInput(f"Unknown room template {template_name!r}. Choose one of: {', '.join(hub.room_templates)}.")
    name = rules.clean_name(name, "The room's name")
    topic = " ".join((topic or "").split())[:500]
    with hub.engine.connect() as conn:
        line = lines.get_line(conn, line_id)
        if line is None:
            raise NotFound("That line does not exist.")
        chosen = [members.get_member(conn, member_id) for member_id in member_ids]
    invitees = []
    for member in chosen:
        if member is None:
            raise InvalidInput("One of the chosen members no longer exists. Reload the page and choose again.")
        if member.line_id not in (None, line.id):
            raise InvalidInput(f"{member.matrix_user_id} is not a member of {line.name}.")
        invitees.append(Invitee(member.matrix_user_id, member.roles))
    body = build_create_room_request(
        template, name, topic, facilitator.matrix_user_id, invitees, hub.config.bot_user_id
    )
    now = hub.clock.now_ms()
    async with hub.homeserver.acting_as(facilitator.matrix_user_id, ACTING_TOKEN_LIFETIME_MS, now) as token:
        room_id = await hub.homeserver.create_room(token, body)
    if template.hub_bot_member:
        await hub.homeserver.join_as(hub.config.bot_user_id, room_id)
    with hub.engine.begin() as conn:
        rooms.add_room(conn, room_id, line.id, template.name, name, facilitator.id, hub.clock.now_ms())
        room = next(room for room in rooms.list_rooms(conn, line.id) if room.room_id == room_id)
    hub.publish_protected_names()  # no member may name her room like this one
    return room
