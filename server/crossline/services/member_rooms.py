"""Rooms the hub did not create (members make their own in their clients): the hub learns them from
Synapse when it acts, so that a removal or a ban reaches them as it reaches the hub's rooms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from crossline.errors import HomeserverError
from crossline.services.hub import Hub
from crossline.storage import rooms as room_store
from crossline.synapse.files import hardened_template

ACTING_MS = 120_000


def _hub_accounts(hub: Hub) -> set[str]:
    """Rooms these made are not members' rooms: the server notices room is how a banned person hears
    the decision and her appeal link."""
    notices = hardened_template()["server_notices"]["system_mxid_localpart"]
    return {hub.config.bot_user_id, hub.config.hub_admin_user_id, f"@{notices}:{hub.config.synapse.server_name}"}


@asynccontextmanager
async def room_admin_token(hub: Hub, room_id: str | None) -> AsyncIterator[str]:
    """A token that can act in the room: a hub room's creator (its facilitator, power level 100), or
    in a room a member made, the hub's admin account raised to the power of its most powerful
    member by Synapse's admin API (she sees the hub's account join: nothing is done unseen)."""
    with hub.engine.connect() as conn:
        creator = room_store.creator_user_id(conn, room_id)
    if creator is not None:
        async with hub.homeserver.acting_as(creator, ACTING_MS, hub.clock.now_ms()) as token:
            yield token
        return
    if not room_id:
        raise HomeserverError("the report names no room, so there is nothing to act on in a room")
    await hub.homeserver.make_room_admin(room_id)
    yield hub.homeserver.admin_token


def outranks_everyone(user_id: str, creator: str | None, levels: dict[str, int]) -> bool:
    """Nobody in the room can ban her: she holds its highest power level (in room version 12 its
    creator holds more than any level)."""
    if user_id not in levels:
        return creator == user_id
    return all(level <= levels[user_id] for level in levels.values())


async def ban_from_member_rooms(hub: Hub, user_id: str, hub_room_ids: set[str]) -> tuple[int, int]:
    """Ban her from every other room she is in: (rooms banned from, rooms closed). Where she holds
    the room's highest power (she made it) nobody can ban her, so the room is closed: everyone is
    removed and nobody can join it again; its history stays on the server."""
    hub_accounts = _hub_accounts(hub)
    banned = closed = 0
    for room_id in await hub.homeserver.joined_rooms(user_id):
        creator = await hub.homeserver.room_creator(room_id)
        if room_id in hub_room_ids or creator in hub_accounts:
            continue
        if outranks_everyone(user_id, creator, await hub.homeserver.room_power_levels(room_id)):
            await hub.homeserver.close_room(room_id)
            closed += 1
            continue
        async with room_admin_token(hub, room_id) as token:
            await hub.homeserver.remove_from_room(token, room_id, user_id, ban=True)
        banned += 1
    return banned, closed
