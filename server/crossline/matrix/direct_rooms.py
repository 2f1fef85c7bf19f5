"""The bot's Matrix side of direct rooms: answering invitations, telling which joined rooms are a
member's direct room, and leaving one that stops being one. What is decided and said is in
services/direct_rooms.py.

An invitation is accepted from a member of a line, to a room her client marks direct
(`is_direct` on the invitation) and encrypted; anyone else's is rejected with the reason, which
her client shows with the rejection. A room joined so is served as
her direct room only while it is encrypted and holds exactly her and the bot; otherwise the bot
says why and leaves. Rooms the hub made are never touched here: only rooms joined on an accepted
invitation are direct rooms.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from nio import JoinResponse, RoomSendResponse
from sqlalchemy import Connection

from crossline.domain import room_messages
from crossline.services import direct_rooms as service
from crossline.services.room_events import RoomMessage

logger = logging.getLogger(__name__)


def invitation_facts(bot_user_id: str, invite_state: list) -> tuple[str | None, bool, bool]:
    """(who invited the bot, marked direct, encrypted) from an invitation's stripped state."""
    inviter, is_direct, encrypted = None, False, False
    for event in invite_state:
        source = getattr(event, "source", None)
        if not isinstance(source, dict):
            continue
        content = source.get("content") if isinstance(source.get("content"), dict) else {}
        if source.get("type") == "m.room.member" and source.get("state_key") == bot_user_id \
                and content.get("membership") == "invite":
            inviter = source.get("sender") if isinstance(source.get("sender"), str) else None
            is_direct = content.get("is_direct") is True
        elif source.get("type") == "m.room.encryption" and content.get("algorithm"):
            encrypted = True
    return inviter, is_direct, encrypted


class DirectRooms:
    def __init__(self, bot):
        self.bot = bot  # matrix/bot.py's HubBot: its client, its API calls and the hub

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
        for room_id, info in invites.items():
            await self._answer_invitation(room_id, info.invite_state)
        with self.bot.hub.engine.connect() as conn:
            direct = service.direct_rooms(conn, joined_room_ids)
        for room_id in direct:
            if not self._private(room_id):
                await self._leave(room_id, service.leaving_message(), say_it=True)
                with self.bot.hub.engine.begin() as conn:
                    service.left_in(conn, room_id)

    async def _answer_invitation(self, room_id: str, invite_state: list) -> None:
        bot = self.bot
        inviter, is_direct, encrypted = invitation_facts(bot.hub.config.bot_user_id, invite_state)
        refusal = service.invitation_refusal(bot.hub, inviter, is_direct, encrypted)
        if refusal:
            await self._leave(room_id, refusal, say_it=False)
            return
        joined = await bot.client.join(room_id)
        if not isinstance(joined, JoinResponse):
            logger.warning("The bot could not join a direct room: %s", getattr(joined, "status_code", joined))
            return
        with bot.hub.engine.begin() as conn:
            service.joined_in(conn, bot.hub, room_id)  # the welcome goes once the next sync has her devices

    async def _leave(self, room_id: str, reason: str, say_it: bool) -> None:
        """Rejects an invitation or leaves a room, with the reason on the membership event (her
        client shows it) and, in a room the bot was in, as a message too."""
        if say_it:
            sent = await self.bot.client.room_send(room_id, "m.room.message", room_messages.notice(reason),
                                                   ignore_unverified_devices=True)
            if not isinstance(sent, RoomSendResponse):
                logger.warning("The bot could not say why it leaves a room: %s", getattr(sent, "status_code", sent))
        try:
            await self.bot._api("POST", f"/rooms/{quote(room_id, safe='')}/leave", {"reason": reason})
        except Exception as error:  # noqa: BLE001 - tried again at the next sync that shows the room
            logger.warning("The bot could not leave a room (%s)", type(error).__name__)
