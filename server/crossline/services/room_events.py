"""Applying decrypted messages from consultation rooms, exactly once, and answering them.

The bot hands over a whole sync batch. Each event id is recorded as processed in the caller's
transaction, together with its effects, the bot's answers and the sync position, so a crash
before the commit replays the batch and a crash after it skips it.

A single message gets a reply of its own. In a busy room, the answers to a batch's messages go
out as one notice naming each person (in chunks a phone can show): fifty separate replies a
second would flood the room for its readers and double the homeserver's work. The notice lists
the answered event ids under ANSWERED_KEY so that clients and tests can match them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection

from crossline.domain import room_commands as commands
from crossline.domain import room_messages
from crossline.domain.consultations import Consultation, Phase, Refusal, StatementStatus
from crossline.domain.records import Member
from crossline.errors import CrosslineError
from crossline.services import consultations as service
from crossline.services import moderation
from crossline.services.hub import Hub
from crossline.storage import bot as bot_store
from crossline.storage import consultations as store

ANSWERED_KEY = "crossline.answered"


@dataclass(frozen=True)
class RoomMessage:
    event_id: str
    room_id: str
    sender: str
    body: str
    reply_to: str | None = None
    sender_name: str = ""
    # For a reply-to-report: the replied-to message as the bot decrypted it (sender, text).
    replied: tuple[str, str] | None = None


@dataclass(frozen=True)
class Report:
    case_id: int
    message: RoomMessage  # the "!report" message, which the bot removes from the room
    status_token: str  # the reporter's private link, sent to her alone


@dataclass(frozen=True)
class AppliedBatch:
    new: int
    reports: list[Report]


def apply_room_messages_in(conn: Connection, hub: Hub, messages: list[RoomMessage]) -> AppliedBatch:
    """Applies the messages not applied before, in order, and queues their answers. Reports are
    not answered in the room (that would tell everyone who reported): the caller removes the
    command and tells the reporter privately."""
    answers: dict[str, list[tuple[RoomMessage, str]]] = defaultdict(list)
    applied, reports = 0, []
    for message in messages:
        if message.sender == hub.config.bot_user_id:
            continue
        if not bot_store.mark_processed(conn, message.event_id, hub.clock.now_ms()):
            continue
        applied += 1
        reason = commands.report_reason(message.body) if message.reply_to else None
        if reason is not None:
            report = _report(conn, hub, message, reason)
            if report:
                reports.append(report)
            continue
        consultation = store.consultation_for_room(conn, message.room_id)
        answer = _answer(conn, hub, consultation, message) if consultation else None
        if answer:
            answers[message.room_id].append((message, answer))
    for room_id, answered in answers.items():
        _queue_answers(conn, hub, room_id, answered)
    return AppliedBatch(applied, reports)


def _report(conn: Connection, hub: Hub, message: RoomMessage, reason: str) -> Report | None:
    member = service.member_by_user_id(conn, message.sender)
    if member is None or message.replied is None:
        return None  # not a member, or the reported message could not be read: nothing to attach
    reported_sender, seen_text = message.replied
    token = hub.new_token()
    case_id = moderation.report_from_room(conn, hub, member, message.room_id, message.reply_to, reported_sender,
                                          seen_text, reason, token)
    return Report(case_id, message, token)


def _queue_answers(conn: Connection, hub: Hub, room_id: str, answered: list[tuple[RoomMessage, str]]) -> None:
    now = hub.clock.now_ms()
    if len(answered) == 1:
        (message, answer), = answered
        content = {"msgtype": "m.notice", "body": answer,
                   "m.relates_to": {"m.in_reply_to": {"event_id": message.event_id}}, ANSWERED_KEY: [message.event_id]}
        bot_store.queue_message(conn, room_id, f"reply-{message.event_id}", content, "reply", now)
        return
    entries = [room_messages.answer_entry(m.sender_name or m.sender, a) for m, a in answered]
    start = 0
    for group in room_messages.chunked(entries):
        part = answered[start:start + len(group)]
        start += len(group)
        content = {"msgtype": "m.notice", "body": "\n".join(group), "m.mentions": {},
                   ANSWERED_KEY: [m.event_id for m, _ in part]}
        # Named after its first event: the batch is committed once, so the name is stable.
        bot_store.queue_message(conn, room_id, f"replies-{part[0][0].event_id}", content, "reply", now)


def _answer(conn: Connection, hub: Hub, consultation: Consultation, message: RoomMessage) -> str | None:
    replied = bot_store.question_for_event(conn, message.reply_to) if message.reply_to else None
    question_id = replied[1] if replied and replied[0] == consultation.id else None
    try:
        command = commands.parse(message.body, question_id is not None)
    except Refusal as refusal:
        return refusal.message
    if command is None:
        return None
    member = service.member_by_user_id(conn, message.sender)
    if member is None:
        return "You are not a member of this hub, so I cannot record that. Ask a facilitator."
    try:
        # A savepoint: a refused action leaves nothing behind, but the event stays processed.
        with conn.begin_nested():
            return _apply(conn, hub, consultation, member, command, question_id)
    except CrosslineError as error:
        return error.message


def _apply(conn: Connection, hub: Hub, consultation: Consultation, member: Member, command: commands.Command,
           replied_question_id: int | None) -> str:
    if isinstance(command, commands.Say):
        question_id = replied_question_id or _question_id(consultation, command.question_position)
        statement = service.submit_statement_in(conn, hub, member, consultation, question_id, command.text, "room",
                                                announced_by_reply=True)
        if statement.status is StatementStatus.PENDING:
            return f"Thank you. Your statement is number {statement.number}; a facilitator will review it before voting."
        # Everyone in the room sees this answer: it is also the statement's announcement.
        return f"Thank you. Your statement is number {statement.number}.\n{service.statement_line(statement)}"
    if isinstance(command, commands.Vote):
        numbers = service.cast_votes_in(conn, hub, member, consultation, [(n, command.value) for n in command.numbers])
        return f"✓ Vote recorded on statement{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}."
    if isinstance(command, commands.Withdraw):
        service.withdraw_in(conn, member, consultation, command.number)
        return f"Statement {command.number} is withdrawn."
    if isinstance(command, commands.Moderate):
        statement = service.moderate_in(conn, hub, member, consultation, command.number, command.approve, command.reason)
        return f"Statement {statement.number} is {statement.status.value}."
    if isinstance(command, commands.ChangePhase):
        changed = service.change_phase_in(conn, hub, member, consultation, command.target)
        return f"The consultation is now {changed.phase.label}."
    if isinstance(command, commands.Status):
        return _status(conn, consultation)
    help_text = commands.HELP + ("\n" + commands.FACILITATOR_HELP if member.has("facilitator") else "")
    return help_text


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
    lines = [f"“{consultation.title}” is {consultation.phase.label}.", f"{approved} statements approved, {pending} waiting."]
    if consultation.phase is Phase.VOTING:
        lines.append("Vote with !agree N, !disagree N or !pass N.")
    return "\n".join(lines)
