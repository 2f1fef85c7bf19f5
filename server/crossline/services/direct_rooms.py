"""A member's direct room with the bot: who is served there, and what she can do in it.

She votes privately (the consultation's room does not see it), asks her status (her
consultations, their phases and the statements she voted on: hers only) and help. A vote goes to
the one consultation of hers that is voting, or to the one she names ("!agree 3 in 12"); with
several voting she is asked which. Her vote counts as any other: a person who took a pseudonym in
a consultation is refused there as herself, with the same words whoever asks, so the answer says
nothing about a pseudonym of hers that the room's only other member, the bot, does not know.

Messages are applied once (processed marks) and answered through the outbox in the caller's
transaction, as in consultation rooms (services/room_events.py). The Matrix side is
matrix/direct_rooms.py; every sentence is in domain/direct_messages.py.
"""

from __future__ import annotations

import hashlib
import json
import logging

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from crossline.domain import room_commands as commands
from crossline.domain import room_messages
from crossline.domain.consultations import Consultation, Phase
from crossline.domain.direct_messages import say, without_target
from crossline.domain.records import Member
from crossline.domain.room_events_parser import Edit, Message, parse_event
from crossline.errors import CrosslineError
from crossline.services import consultations as service
from crossline.services.hub import Hub
from crossline.services.room_events import ANSWERED_KEY, RoomMessage
from crossline.storage import bot as bot_store
from crossline.storage import consultations as store
from crossline.storage import members as member_store

logger = logging.getLogger(__name__)


def _served(member: Member | None) -> bool:
    return member is not None and member.line_id is not None


def invitation_refusal(hub: Hub, inviter: str | None, is_direct: bool, private: bool, room_id: str) -> str | None:
    """Why the bot declines an invitation (said to the inviter), or None to serve the room.
    `private`: the room, once joined, is encrypted and holds just the inviter and the bot. A member
    is served in one direct room at a time, so that nobody can make the bot serve thousands."""
    with hub.engine.connect() as conn:
        member = member_store.find_by_user_id(conn, inviter) if inviter else None
        served = served_room_of(conn, inviter) if inviter else None
    if not _served(member):
        return say("not_a_member")
    if not (is_direct and private):
        return say("not_private")
    if served not in (None, room_id):
        return say("already_served")
    return None


def leaving_message() -> str:
    return say("leaving")


def _digest(text: str) -> str:
    # The bot's key-value state holds 64 characters; a room or user id can be longer.
    return hashlib.sha256(text.encode()).hexdigest()[:48]


def _state_key(room_id: str) -> str:
    return "direct-room:" + _digest(room_id)


def _member_key(user_id: str) -> str:
    return "direct-of:" + _digest(user_id)


def _states(conn: Connection, room_ids: set[str]) -> dict[str, str]:
    keys = {_state_key(room_id): room_id for room_id in room_ids}
    return {keys[key]: state for key, state in bot_store.get_states(conn, list(keys)).items() if state}


def direct_rooms(conn: Connection, room_ids: set[str]) -> set[str]:
    """Of these rooms, those the bot serves as a member's direct room."""
    return rooms_by_state(conn, room_ids)[1]


def served_room_of(conn: Connection, user_id: str) -> str | None:
    """The direct room the bot serves this member in, if any."""
    room_id = bot_store.get_state(conn, _member_key(user_id))
    return room_id if room_id and room_id in direct_rooms(conn, {room_id}) else None


def invited_in(conn: Connection, room_id: str, inviter: str | None, is_direct: bool) -> None:
    """The bot joins an invitation's room to see what it is (its encryption and members are
    known only from inside) and to say why, if it declines; this is kept until then."""
    bot_store.set_state(conn, _state_key(room_id), json.dumps({"inviter": inviter, "direct": is_direct}))


def invitations(conn: Connection, room_ids: set[str]) -> dict[str, tuple[str | None, bool]]:
    """Of these rooms, those joined on an invitation not yet answered: (inviter, marked direct)."""
    return rooms_by_state(conn, room_ids)[0]


def rooms_by_state(conn: Connection, room_ids: set[str]) -> tuple[dict[str, tuple[str | None, bool]], set[str]]:
    """Of these rooms, in one read: those joined on an invitation not yet answered (inviter,
    marked direct), and those served as a member's direct room."""
    invited, direct = {}, set()
    for room_id, state in _states(conn, room_ids).items():
        if state.startswith("{"):
            kept = json.loads(state)
            invited[room_id] = (kept["inviter"], kept["direct"])
        elif state == "joined":
            direct.add(room_id)
    return invited, direct


def joined_in(conn: Connection, hub: Hub, room_id: str, member_user_id: str | None = None) -> None:
    """The bot has joined her direct room: it is served from now on (her one direct room), and
    greets her."""
    bot_store.set_state(conn, _state_key(room_id), "joined")
    if member_user_id:
        bot_store.set_state(conn, _member_key(member_user_id), room_id)
    bot_store.queue_message(conn, room_id, f"dm-welcome-{room_id}",
                            room_messages.notice(say("welcome", help=say("help"))), "notice", hub.clock.now_ms())


def left_in(conn: Connection, room_id: str) -> None:
    bot_store.set_state(conn, _state_key(room_id), "left")


def apply_direct_messages_in(conn: Connection, hub: Hub, messages: list[RoomMessage]) -> None:
    """Applies the messages not applied before and queues each answer, a reply to her message."""
    for message in messages:
        if message.sender == hub.config.bot_user_id or not bot_store.mark_processed(conn, message.event_id,
                                                                                    hub.clock.now_ms()):
            continue
        try:
            with conn.begin_nested():
                answer = _answer(conn, hub, message)
        except (OperationalError, InterfaceError):
            raise  # the database itself: the whole batch is retried
        except Exception as error:  # noqa: BLE001 - a poison event: skipped and answered, never retried
            logger.warning("A direct-room event could not be handled (%s); it is skipped", type(error).__name__)
            answer = say("could_not")
        if answer:
            content = room_messages.notice(answer, **{"m.relates_to": {"m.in_reply_to": {"event_id": message.event_id}},
                                                      ANSWERED_KEY: [message.event_id]})
            bot_store.queue_message(conn, message.room_id, f"dm-{message.event_id}", room_messages.fit(content),
                                    "reply", hub.clock.now_ms())


def _answer(conn: Connection, hub: Hub, message: RoomMessage) -> str | None:
    if message.event is None:
        raise ValueError("the bot's client could not read this event")
    event, target = without_target(message.event)
    parsed = parse_event(event)
    if isinstance(parsed, Edit) and isinstance(parsed.command, commands.Vote):
        command = parsed.command  # an edited vote is a changed vote
    elif isinstance(parsed, Message) and not isinstance(parsed.command, commands.Plain):
        command = parsed.command
    else:
        return None  # conversation, edits of anything else, redactions: nothing to do
    member = member_store.find_by_user_id(conn, message.sender)
    if not _served(member):
        return say("not_a_member")
    if isinstance(command, commands.Refused):
        return command.message
    if isinstance(command, commands.Help):
        return say("help")
    if isinstance(command, commands.Status):
        return _status(conn, member)
    if not isinstance(command, commands.Vote):
        return say("only_here")
    try:
        return _vote(conn, hub, member, command, target)
    except CrosslineError as error:
        return error.message


def _vote(conn: Connection, hub: Hub, member: Member, vote: commands.Vote, target: int | None) -> str:
    mine = service.consultations_for_in(conn, member) if member.has("participant") else []
    if target is not None:
        chosen = [c for c in mine if c.id == target]
        if not chosen:
            return say("no_such")  # the same whether it exists elsewhere or not at all
    else:
        chosen = [c for c in mine if c.phase is Phase.VOTING]
        if not chosen:
            return say("none_voting")
        if len(chosen) > 1:
            return say("which", example=chosen[0].id, choices="\n".join(_choice(c) for c in chosen))
    consultation = chosen[0]
    numbers = service.cast_votes_in(conn, hub, member, consultation, [(n, vote.value) for n in vote.numbers])
    statements = (say("statement", number=numbers[0]) if len(numbers) == 1
                  else say("statements", numbers=", ".join(map(str, numbers))))
    return say("recorded", statements=statements, title=room_messages.member_words(consultation.title, 120))


def _choice(consultation: Consultation) -> str:
    return say("choice", number=consultation.id, title=room_messages.member_words(consultation.title, 120))


def _status(conn: Connection, member: Member) -> str:
    mine = service.consultations_for_in(conn, member) if member.has("participant") else []
    if not mine:
        return say("status_none")
    lines = []
    for consultation in mine:
        lines.append(say("status_line", number=consultation.id, phase=consultation.phase.label,
                         title=room_messages.member_words(consultation.title, 120)))
        numbers = {statement.id: number for number, statement in store.ballot_index(conn, consultation.id).items()}
        votes = store.member_votes(conn, consultation.id, member.id)
        if votes:
            lines.append(say("status_votes", votes=", ".join(
                say("status_vote", number=numbers[s], value=value.value)
                for s, value in sorted(votes.items(), key=lambda item: numbers[item[0]]))))
        else:
            lines.append(say("status_no_votes"))
    return "\n".join(lines)
