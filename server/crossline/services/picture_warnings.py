"""Warning a member, privately, that a picture she sent in a room carries where it was taken
(issue 24). The Matrix side (download, decryption, opening a room) is matrix/pictures.py; what a
picture reveals is domain/pictures.location_in; every sentence is in domain/direct_messages.py.

Which pictures are checked is decided in the sync batch's transaction (`to_check_in`): each
(sender, file) is marked there, before any check, so a picture is checked at most once, restarts
included; a check cut short by a restart is not tried again. Each member has a few checks a
minute (`PICTURES_PER_MINUTE`): a hostile member cannot make the bot download without end. Her
pictures over the limit are not read; a warning about the others says how many there were. A
member's pictures of one batch (an album) are told in one warning naming each that carries a
place. Pictures in her direct room with the bot are not checked: nobody else is there.

The warning goes to her alone: in her direct room with the bot if she has one, otherwise in a
room the bot opens with her for it (matrix/pictures.py), which then becomes her direct room. If she
declines that room, the bot opens none again for a week (`DECLINE_PAUSE_MS`): she is not warned. It
says what the picture reveals and how to remove it, never the place.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection

from crossline.clock import Clock
from crossline.domain import room_messages
from crossline.domain.direct_messages import say
from crossline.domain.pictures import Revealed
from crossline.domain.ratelimit import Ratelimiter
from crossline.domain.room_events_parser import Redaction, parse_event
from crossline.domain.room_pictures import PictureFile, check_key, picture_in
from crossline.services import direct_rooms
from crossline.services.hub import Hub
from crossline.services.room_events import RoomMessage
from crossline.storage import bot as bot_store

PICTURES_PER_MINUTE = 5
# She declined (or left) the room the bot opened to warn her: no other is opened for a week, as a
# member she declines cannot invite her again for a week (policies/crossline_policies/contact.py).
DECLINE_PAUSE_MS = 7 * 24 * 3600 * 1000
# The section of docs/participants.md that says, app by app, how to send pictures without location.
GUIDE_SECTION = "Photos that do not show where you are"
# Members have no language setting yet: every catalog falls back to English.
LANGUAGE = "en"


@dataclass(frozen=True)
class SentPicture:
    event_id: str
    room_id: str
    picture: PictureFile


@dataclass(frozen=True)
class PictureCheck:
    """One member's pictures of one sync batch (an album comes in one), checked together and told
    in one warning that names every picture that carries a place."""

    key: str  # the first picture's check_key: also the warning's transaction id, so it is queued once
    sender: str
    pictures: tuple[SentPicture, ...]
    unchecked: int = 0  # her pictures of the batch past her limit: not read, but counted in the warning


class PictureGate:
    """The per-member limit, in memory (a restart forgets it, which a flood cannot exploit: the
    pictures it held back are marked checked already)."""

    def __init__(self, clock: Clock, per_minute: int = PICTURES_PER_MINUTE):
        self.limiter = Ratelimiter(clock, burst=per_minute, per_ms=60_000)

    def allows(self, sender: str) -> bool:
        return self.limiter.can_do_action(("picture", sender))[0]


def to_check_in(conn: Connection, hub: Hub, messages: list[RoomMessage], gate: PictureGate) -> list[PictureCheck]:
    """The pictures of a sync batch to check, one PictureCheck per sender, each picture marked as
    checked in the caller's transaction. Left out: the bot's own, files already checked for that
    sender, pictures deleted in the same batch, pictures in a member's direct room with the bot.
    A member's pictures over her limit are not read; the warning says how many there were."""
    config = hub.config
    found = [(m, picture_in(m.event, config.synapse.server_name)) for m in messages if m.sender != config.bot_user_id]
    found = [(m, p) for m, p in found if p is not None]
    if not found:
        return []
    deleted = {parsed.redacted_event_id for parsed in (parse_event(m.event) for m in messages)
               if isinstance(parsed, Redaction)}
    private = direct_rooms.direct_rooms(conn, {m.room_id for m, _ in found})
    by_sender: dict[str, tuple[list[tuple[str, SentPicture]], list[int]]] = {}
    for message, picture in found:
        key = check_key(message.sender, picture)
        if message.event_id in deleted or message.room_id in private:
            continue
        if not bot_store.mark_processed(conn, key, hub.clock.now_ms()):
            continue
        checked, unchecked = by_sender.setdefault(message.sender, ([], [0]))
        if gate.allows(message.sender):
            checked.append((key, SentPicture(message.event_id, message.room_id, picture)))
        else:
            unchecked[0] += 1
    return [PictureCheck(checked[0][0], sender, tuple(sent for _key, sent in checked), unchecked[0])
            for sender, (checked, unchecked) in by_sender.items() if checked]


@dataclass(frozen=True)
class Found:
    """A picture of hers that carries a place, and the name of the room she sent it in."""

    sent: SentPicture
    revealed: Revealed
    room_name: str


def warning(found: list[Found], unchecked: int, opened: bool) -> str:
    """What she is told: where she sent which pictures, what they reveal (never the place), how to
    remove them. `opened`: the first message of a room the bot opened for it, which says why first.
    `unchecked`: pictures she sent with them that were not read (past her limit)."""
    device = say("picture_device", LANGUAGE) if any(f.revealed.device for f in found) else ""
    lines = [say("picture_opened", LANGUAGE)] if opened else []
    if len(found) == 1:
        name = room_messages.member_words(found[0].sent.picture.name, 80)
        lines.append(say("picture_reveals", LANGUAGE, room=room_messages.member_words(found[0].room_name, 120),
                         picture=say("picture_named", LANGUAGE, name=name) if name else "", device=device))
    else:
        named = [say("picture_in_room", LANGUAGE, name=room_messages.member_words(f.sent.picture.name, 80),
                     room=room_messages.member_words(f.room_name, 120)) for f in found]
        lines.append(say("picture_reveals_many", LANGUAGE, count=len(found), device=device,
                         pictures="\n".join(named)))
    if unchecked:
        lines.append(say("picture_unchecked", LANGUAGE, count=unchecked))
    lines += [say("picture_remove", LANGUAGE, guide=GUIDE_SECTION), say("picture_private", LANGUAGE)]
    return "\n".join(lines)


def warn_in(conn: Connection, hub: Hub, check: PictureCheck, found: list[Found]) -> bool:
    """Queues the warning in her direct room with the bot; False if she has none (the caller opens
    one and calls `warn_in_opened`)."""
    room_id = direct_rooms.served_room_of(conn, check.sender)
    if room_id is None:
        return False
    _queue(conn, hub, room_id, check, warning(found, check.unchecked, opened=False))
    return True


def may_open_room(conn: Connection, hub: Hub, user_id: str) -> bool:
    """Whether the bot may open a room with her for a warning: not within DECLINE_PAUSE_MS of the
    last one it opened, which she then declined or left (it would still be her served room
    otherwise), as an invitation she declines from a member holds that member off for a week."""
    opened = bot_store.get_state(conn, _opened_key(user_id))
    return opened is None or hub.clock.now_ms() - int(opened) >= DECLINE_PAUSE_MS


def warn_in_opened(conn: Connection, hub: Hub, room_id: str, check: PictureCheck, found: list[Found]) -> None:
    """The room the bot just opened with her: the warning first (it says why the room exists), then
    the room is served as her direct room (with its usual welcome after it)."""
    _queue(conn, hub, room_id, check, warning(found, check.unchecked, opened=True))
    direct_rooms.joined_in(conn, hub, room_id, check.sender)
    bot_store.set_state(conn, _opened_key(check.sender), str(hub.clock.now_ms()))


def _opened_key(user_id: str) -> str:
    # The bot's key-value state holds 64 characters; a user id can be longer.
    return "picture-room-of:" + hashlib.sha256(user_id.encode()).hexdigest()[:40]


def _queue(conn: Connection, hub: Hub, room_id: str, check: PictureCheck, text: str) -> None:
    bot_store.queue_message(conn, room_id, check.key, room_messages.notice(text), "notice", hub.clock.now_ms())
