"""The bot's Matrix side of direct rooms: answering invitations, telling which joined rooms are a
member's direct room, and leaving one that stops being one. What is decided and said is in
services/direct_rooms.py.

The bot joins the room it is invited to (its encryption and members are known only from inside;
nio keeps no m.room.encryption of an invitation) and, at the next sync, serves it if the inviter is
a member of a line, her client marked it direct (`is_direct`) and it is encrypted with just her and
the bot; otherwise it says why, in the room, and leaves (Crossline's rooms refuse a reason on a
membership event: it would be in clear). A direct room is served only while it stays private; when
it stops being private the bot says so and leaves. Rooms the hub made are never touched here: only
invitations marked direct are answered (the hub's own rooms invite the bot without that mark and
join it themselves); an invitation to any other room is left unanswered. A member is served in one
direct room at a time: another one she invites the bot to is declined with a word and left.
"""

from __future__ import annotations

import logging

from nio import InviteMemberEvent, JoinResponse, RoomLeaveResponse, RoomSendResponse
from sqlalchemy import Connection

from crossline.domain import room_messages
from crossline.services import direct_rooms as service
from crossline.services.room_events import RoomMessage

logger = logging.getLogger(__name__)


def invitation_facts(bot_user_id: str, invite_state: list) -> tuple[str | None, bool]:
    """(who invited the bot, marked direct) from an invitation's stripped state as nio gives it
    (nio moves a member event's content out of `source`, onto the event)."""
    for event in invite_state:
        if isinstance(event, InviteMemberEvent) and event.state_key == bot_user_id and event.membership == "invite":
            content = event.content if isinstance(event.content, dict) else {}
            return (event.sender if isinstance(event.sender, str) else None), content.get("is_direct") is True
    return None, False


class DirectRooms:
    def __init__(self, bot):
        self.bot = bot  # matrix/bot.py's HubBot: its client and the hub

    def apply_in(self, conn: Connection, messages: list[RoomMessage]) -> list[RoomMessage]:
        """Applies the messages sent in direct rooms (in the caller's transaction) and returns the
        others. A direct room that is no longer private is not served (after_sync leaves it)."""
        direct = service.direct_rooms(conn, {m.room_id for m in messages})
        service.apply_direct_messages_in(conn, self.bot.hub, [m for m in messages
                                                              if m.room_id in direct and self._private(m.room_id)])
        return [m for m in messages if m.room_id not in direct]

    def _private(self, room_id: str) -> bool:
        room = self.bot.client.rooms.get(room_id)
        return bool(room and room.encrypted and room.joined_count + room.invited_count == 2)

    async def after_sync(self, invites: dict, joined_room_ids: set[str]) -> None:
        """Joins the rooms it is invited to; answers each once its state is known (the sync after
        the join); leaves a direct room that is no longer private."""
        hub = self.bot.hub
        for room_id, info in invites.items():
            inviter, is_direct = invitation_facts(hub.config.bot_user_id, info.invite_state)
            if not is_direct:
                # Not a direct room: the hub's own rooms invite the bot and then join it themselves
                # (answering here would decline and leave a consultation room), and any other
                # group room is simply never joined.
                continue
            with hub.engine.begin() as conn:  # first: a crash after the join still answers it
                service.invited_in(conn, room_id, inviter, is_direct)
            joined = await self.bot.client.join(room_id)
            if not isinstance(joined, JoinResponse):
                logger.warning("The bot could not join a room it was invited to: %s",
                               getattr(joined, "status_code", joined))
        with hub.engine.connect() as conn:
            invited, direct = service.rooms_by_state(conn, joined_room_ids)
        for room_id, (inviter, is_direct) in invited.items():
            refusal = service.invitation_refusal(hub, inviter, is_direct, self._private(room_id), room_id)
            if refusal:
                await self._leave(room_id, refusal)
            else:
                with hub.engine.begin() as conn:
                    service.joined_in(conn, hub, room_id, inviter)  # serves it, and queues the welcome
        for room_id in direct:
            if not self._private(room_id):
                await self._leave(room_id, service.leaving_message())

    async def _leave(self, room_id: str, reason: str) -> None:
        """Says why (encrypted: Crossline's rooms take no reason on a membership, which would be
        in clear) and leaves."""
        room = self.bot.client.rooms.get(room_id)
        if room is not None and room.encrypted:
            sent = await self.bot.client.room_send(room_id, "m.room.message", room_messages.notice(reason),
                                                   ignore_unverified_devices=True)
            if not isinstance(sent, RoomSendResponse):
                logger.warning("The bot could not say why it leaves a room: %s", getattr(sent, "status_code", sent))
        left = await self.bot.client.room_leave(room_id)
        if not isinstance(left, RoomLeaveResponse):
            logger.warning("The bot could not leave a room: %s", getattr(left, "status_code", left))
            return  # tried again at the next sync that shows the room
        with self.bot.hub.engine.begin() as conn:
            service.left_in(conn, room_id)
