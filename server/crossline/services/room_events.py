"""Applying events from consultation rooms, exactly once, and answering them.

The bot hands over a whole sync batch. Each event id is recorded as processed in the caller's
transaction, together with its effects, the bot's answers and the sync position, so a crash
before the commit replays the batch and a crash after it skips it.

Each event is handled in a savepoint of its own: one that fails for any reason other than the
database itself (a poison event: a shape nobody foresaw, a bug it uncovers) is rolled back alone,
logged by its error's type (never its content), stays processed so it is never tried again, and
its sender gets a neutral answer; every other event of the batch is applied and answered.

A single message gets a reply of its own. In a busy room, the answers to a batch's messages go
out as one notice naming each person (in chunks a phone can show): fifty separate replies a
second would flood the room for its readers and double the homeserver's work. The notice lists
the answered event ids under ANSWERED_KEY so that clients and tests can match them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from crossline.domain import consultations as engine
from crossline.domain import room_commands as commands
from crossline.domain import room_messages
from crossline.domain.consultations import Consultation, Phase, Refusal, StatementStatus, VoteValue
from crossline.domain.records import Member
from crossline.domain.room_events_parser import Edit, Ignore, Message, Redaction, parse_event
from crossline.errors import CrosslineError
from crossline.services import consultations as service
from crossline.services import moderation
from crossline.services.hub import Hub
from crossline.storage import bot as bot_store
from crossline.storage import consultations as store
from crossline.storage import room_event_origins as origins

logger = logging.getLogger(__name__)

ANSWERED_KEY = "crossline.answered"
COULD_NOT_HANDLE = "Sorry, I could not handle that message, and nothing was recorded from it. Write !help to see what you can send."


@dataclass(frozen=True)
class RoomMessage:
    event_id: str
    room_id: str
    sender: str
    # The decrypted event as nio gives it (`event.source`), for room_events_parser; None: the bot
    # could not read it (its client failed on it), which is answered as a failure.
    event: object
    sender_name: str = ""
    # For a reply-to-report: the replied-to message as the bot decrypted it (sender, text).
    replied: tuple[str, str] | None = None

    @classmethod
    def text(cls, event_id: str, room_id: str, sender: str, body: str, reply_to: str | None = None,
             sender_name: str = "", replied: tuple[str, str] | None = None) -> "RoomMessage":
        """A plain text message, as tests and direct callers write one."""
        content = {"msgtype": "m.text", "body": body}
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return cls(event_id, room_id, sender, {"type": "m.room.message", "content": content}, sender_name, replied)


@dataclass(frozen=True)
class Report:
    case_id: int
    message: RoomMessage  # the "!report" message, which the bot removes from the room
    status_token: str  # the reporter's private link, sent to her alone


@dataclass(frozen=True)
class Hidden:
    """A command whose answer would out her (she counts under a pseudonym here): the caller removes
    it from the room, and nothing about it is said there; she is told in her direct room, if any."""
    message: RoomMessage
    text: str


@dataclass(frozen=True)
class AppliedBatch:
    new: int
    reports: list[Report]
    failed: int = 0
    hidden: tuple[RoomMessage, ...] = ()


@dataclass(frozen=True)
class _Answer:
    text: str
    as_reply: bool = True  # a Matrix reply to the event (not to a deletion: clients show it as missing)


def apply_room_messages_in(conn: Connection, hub: Hub, messages: list[RoomMessage]) -> AppliedBatch:
    """Applies the messages not applied before, in order, and queues their answers. Reports are
    not answered in the room (that would tell everyone who reported): the caller removes the
    command and tells the reporter privately."""
    answers: dict[str, list[tuple[RoomMessage, _Answer]]] = defaultdict(list)
    applied, failed, reports, hidden = 0, 0, [], []
    for message in messages:
        if message.sender == hub.config.bot_user_id:
            continue
        if not bot_store.mark_processed(conn, message.event_id, hub.clock.now_ms()):
            continue
        applied += 1
        try:
            with conn.begin_nested():
                outcome = _handle(conn, hub, message)
        except (OperationalError, InterfaceError):
            raise  # the database itself: the whole batch is retried, nothing is lost
        except Exception as error:  # noqa: BLE001 - a poison event: skipped, answered, never retried
            logger.warning("A room event could not be handled (%s); it is skipped", type(error).__name__)
            failed += 1
            outcome = _Answer(COULD_NOT_HANDLE)
        if isinstance(outcome, Report):
            reports.append(outcome)
        elif isinstance(outcome, Hidden):
            hidden.append(outcome.message)
            _tell_privately(conn, hub, outcome)
        elif isinstance(outcome, _Answer):
            answers[message.room_id].append((message, outcome))
    for room_id, answered in answers.items():
        _queue_answers(conn, hub, room_id, answered)
    return AppliedBatch(applied, reports, failed, tuple(hidden))


def _handle(conn: Connection, hub: Hub, message: RoomMessage) -> _Answer | Report | Hidden | None:
    if message.event is None:
        raise ValueError("the bot's client could not read this event")
    parsed = parse_event(message.event)
    if isinstance(parsed, Ignore):
        return None
    if isinstance(parsed, Message) and isinstance(parsed.command, commands.Report):
        return _report(conn, hub, message, parsed.reply_to, parsed.command.reason)
    consultation = store.consultation_for_room(conn, message.room_id)
    if consultation is None:
        return None
    if isinstance(parsed, Redaction):
        return _redaction(conn, consultation, message, parsed.redacted_event_id)
    if isinstance(parsed, Edit):
        return _edit(conn, hub, consultation, message, parsed)
    return _message(conn, hub, consultation, message, parsed)


def _report(conn: Connection, hub: Hub, message: RoomMessage, reported_event_id: str | None,
            reason: str) -> Report | None:
    member = service.member_by_user_id(conn, message.sender)
    if member is None or message.replied is None or reported_event_id is None:
        return None  # not a member, or the reported message could not be read: nothing to attach
    reported_sender, seen_text = message.replied
    token = hub.new_token()
    case_id = moderation.report_from_room(conn, hub, member, message.room_id, reported_event_id, reported_sender,
                                          seen_text, reason, token)
    return Report(case_id, message, token)


def _message(conn: Connection, hub: Hub, consultation: Consultation, message: RoomMessage,
             parsed: Message) -> _Answer | Hidden | None:
    replied = bot_store.question_for_event(conn, parsed.reply_to) if parsed.reply_to else None
    question_id = replied[1] if replied and replied[0] == consultation.id else None
    command = parsed.command
    if isinstance(command, commands.Plain):
        if question_id is None:
            return None  # conversation
        command = commands.Say(None, command.text)
    if isinstance(command, commands.Refused):
        return _Answer(command.message)
    member = service.member_by_user_id(conn, message.sender)
    if member is None:
        return _Answer("You are not a member of this hub, so I cannot record that. Ask a facilitator.")
    try:
        # A savepoint: a refused action leaves nothing behind, but the event stays processed.
        with conn.begin_nested():
            text, statement_id = _apply(conn, hub, consultation, member, command, question_id)
            if isinstance(command, (commands.Say, commands.Vote)):
                origins.record(conn, message.event_id, message.room_id, member.id, statement_id, _cast(command),
                               hub.clock.now_ms())
            return _Answer(text)
    except CrosslineError as error:
        return _refused(message, error)


def _refused(message: RoomMessage, error: CrosslineError) -> _Answer | Hidden:
    return Hidden(message, error.message) if isinstance(error, service.CountsUnderPseudonym) else _Answer(error.message)


def _tell_privately(conn: Connection, hub: Hub, hidden: Hidden) -> None:
    # Imported here: services/direct_rooms builds on this module.
    from crossline.services.direct_rooms import served_room_of
    room_id = served_room_of(conn, hidden.message.sender)
    if room_id:
        bot_store.queue_message(conn, room_id, f"private-{hidden.message.event_id}",
                                room_messages.notice(f"Your message in a consultation room was removed. {hidden.text}"),
                                "reply", hub.clock.now_ms())


def _cast(command: commands.Command) -> list[tuple[int, VoteValue]]:
    return [(n, command.value) for n in command.numbers] if isinstance(command, commands.Vote) else []


def _apply(conn: Connection, hub: Hub, consultation: Consultation, member: Member, command: commands.Command,
           replied_question_id: int | None) -> tuple[str, int | None]:
    """The answer, and the statement made (if any)."""
    if isinstance(command, commands.Say):
        question_id = replied_question_id or _question_id(consultation, command.question_position)
        statement = service.submit_statement_in(conn, hub, member, consultation, question_id, command.text, "room",
                                                announced_by_reply=True)
        if statement.status is StatementStatus.PENDING:
            return (f"Thank you. Your statement is number {statement.number}; a facilitator will review it before "
                    "voting. You can edit it until then."), statement.id
        # Everyone in the room sees this answer: it is also the statement's announcement.
        return (f"Thank you. Your statement is number {statement.number}.\n"
                f"{room_messages.quoted_statement(statement.number, statement.text)}"), statement.id
    if isinstance(command, commands.Vote):
        return _vote(conn, hub, consultation, member, command, "✓ Vote recorded"), None
    if isinstance(command, commands.Withdraw):
        service.withdraw_in(conn, member, consultation, command.number)
        return f"Statement {command.number} is withdrawn.", None
    if isinstance(command, commands.Moderate):
        statement = service.moderate_in(conn, hub, member, consultation, command.number, command.approve, command.reason)
        return f"Statement {statement.number} is {statement.status.value}.", None
    if isinstance(command, commands.ChangePhase):
        changed = service.change_phase_in(conn, hub, member, consultation, command.target)
        return f"The consultation is now {changed.phase.label}.", None
    if isinstance(command, commands.Status):
        return _status(conn, consultation), None
    help_text = commands.HELP + ("\n" + commands.FACILITATOR_HELP if member.has("facilitator") else "")
    return help_text, None


def _vote(conn: Connection, hub: Hub, consultation: Consultation, member: Member, command: commands.Vote,
          said: str) -> str:
    numbers = service.cast_votes_in(conn, hub, member, consultation, [(n, command.value) for n in command.numbers])
    return f"{said} on statement{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}: {command.value.value}."


def _edit(conn: Connection, hub: Hub, consultation: Consultation, message: RoomMessage,
          edit: Edit) -> _Answer | Hidden | None:
    """An edit counts only from the edited event's own sender (clients show no one else's either),
    in the room of that event, and only for an event that was a vote or a statement. An edited vote
    replaces that message's votes: numbers it no longer names are withdrawn."""
    origin = origins.origin(conn, edit.original_event_id)
    member = service.member_by_user_id(conn, message.sender)
    if origin is None or member is None or origin.member_id != member.id or origin.room_id != message.room_id:
        return None
    command = edit.command
    if origin.statement_id is not None:
        return _Answer(_edit_statement(conn, consultation, member, origin.statement_id, command))
    if isinstance(command, commands.Refused):
        return _Answer(command.message)
    cast = _cast(command)
    dropped = [(n, v) for n, v in origin.votes if n not in {number for number, _ in cast}]
    try:
        with conn.begin_nested():
            if consultation.phase is not Phase.VOTING:
                raise Refusal("Voting is not open, so your edit changes no vote.")
            said = _vote(conn, hub, consultation, member, command, "✓ Vote changed") if cast else ""
            origins.drop_votes(conn, consultation.id, member.id, dropped)
            origins.set_votes(conn, edit.original_event_id, cast)
    except CrosslineError as error:
        return _refused(message, error)
    withdrawn = (f"Your vote on statement{'s' if len(dropped) > 1 else ''} {', '.join(str(n) for n, _ in dropped)} "
                 "is withdrawn: your edited message no longer names it.") if dropped else ""
    return _Answer("\n".join(line for line in (said, withdrawn) if line) or "Your edit changes no vote.")


def _edit_statement(conn: Connection, consultation: Consultation, member: Member, statement_id: int,
                    command: commands.Command) -> str:
    statement = _own_statement(conn, consultation, statement_id)
    if statement is None:
        return "That message's statement belongs to another consultation, so your edit changes nothing here."
    number = statement.number
    if statement.status is not StatementStatus.PENDING:
        return (f"Statement {number} is {statement.status.value}, so your edit does not change it. "
                f"To change it, write !withdraw {number} (while statements are collected) and send it again.")
    if isinstance(command, commands.Say):
        command = commands.Plain(command.text)
    if not isinstance(command, commands.Plain):
        return f"Statement {number} stays as it was: an edit can change its words, not make it a command."
    others = [s for s in store.list_statements(conn, consultation.id) if s.id != statement_id]
    try:
        text, _, _ = engine.submit_statement(consultation, service.as_participant(member), statement.question_id,
                                             command.text, others)
    except Refusal as refusal:
        return f"Statement {number} stays as it was. {refusal.message}"
    origins.set_statement_text(conn, statement_id, text)
    return f"Statement {number} is updated; a facilitator will review it before voting."


def _redaction(conn: Connection, consultation: Consultation, message: RoomMessage, redacted: str) -> _Answer | None:
    """Her statement's message deleted by her before approval withdraws the statement. Anyone
    else's deletion (a moderator's) changes nothing here: moderation has its own commands."""
    origin = origins.origin(conn, redacted)
    member = service.member_by_user_id(conn, message.sender)
    if (origin is None or origin.statement_id is None or member is None or origin.member_id != member.id
            or origin.room_id != message.room_id):
        return None
    statement = _own_statement(conn, consultation, origin.statement_id)
    if statement is None:
        return None
    if statement.status is StatementStatus.PENDING:
        try:
            with conn.begin_nested():
                service.withdraw_in(conn, member, consultation, statement.number)
        except CrosslineError as error:
            return _Answer(error.message, as_reply=False)
        return _Answer(f"Statement {statement.number} is withdrawn: its message was deleted before approval.",
                       as_reply=False)
    if statement.status is StatementStatus.APPROVED:
        return _Answer(f"Statement {statement.number} was approved before its message was deleted, so it stays. "
                       f"To withdraw it, write !withdraw {statement.number}.", as_reply=False)
    return None


def _own_statement(conn: Connection, consultation: Consultation, statement_id: int):
    return next((s for s in store.list_statements(conn, consultation.id) if s.id == statement_id), None)


def _queue_answers(conn: Connection, hub: Hub, room_id: str, answered: list[tuple[RoomMessage, _Answer]]) -> None:
    now = hub.clock.now_ms()
    if len(answered) == 1:
        (message, answer), = answered
        relation = {"m.relates_to": {"m.in_reply_to": {"event_id": message.event_id}}} if answer.as_reply else {}
        content = room_messages.notice(answer.text, **relation, **{ANSWERED_KEY: [message.event_id]})
        bot_store.queue_message(conn, room_id, f"reply-{message.event_id}", content, "reply", now)
        return
    entries = [room_messages.answer_entry(m.sender_name or m.sender, a.text) for m, a in answered]
    start = 0
    for group in room_messages.chunked(entries):
        part = answered[start:start + len(group)]
        start += len(group)
        content = room_messages.notice("\n".join(group), **{ANSWERED_KEY: [m.event_id for m, _ in part]})
        # Named after its first event: the batch is committed once, so the name is stable.
        bot_store.queue_message(conn, room_id, f"replies-{part[0][0].event_id}", content, "reply", now)


def _question_id(consultation: Consultation, position: int | None) -> int:
    if position is None:
        if len(consultation.questions) == 1:
            return consultation.questions[0].id
        raise Refusal("This consultation has several questions: reply to one, or write !say and its number, "
                      "for example: !say 2 your statement")
    question = consultation.question_at(position)
    if question is None:
        raise Refusal(f"There is no question {position}. Questions are numbered 1 to {len(consultation.questions)}.")
    return question.id


def _status(conn: Connection, consultation: Consultation) -> str:
    statements = store.list_statements(conn, consultation.id)
    approved = sum(1 for s in statements if s.status is StatementStatus.APPROVED)
    pending = sum(1 for s in statements if s.status is StatementStatus.PENDING)
    lines = [f"“{room_messages.member_words(consultation.title)}” is {consultation.phase.label}.", f"{approved} statements approved, {pending} waiting."]
    if consultation.phase is Phase.VOTING:
        lines.append("Vote with !agree N, !disagree N or !pass N.")
    return "\n".join(lines)
