"""Applying a decrypted message from a consultation room, exactly once.

The event id is recorded as processed in the same transaction as the effects and the bot's
reply, so a crash before the commit replays the event and a crash after it skips it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from crossline.domain import room_commands as commands
from crossline.domain.consultations import Consultation, Phase, Refusal, StatementStatus
from crossline.domain.records import Member
from crossline.errors import CrosslineError
from crossline.services import consultations as service
from crossline.services.hub import Hub
from crossline.storage import bot as bot_store
from crossline.storage import consultations as store


@dataclass(frozen=True)
class RoomMessage:
    event_id: str
    room_id: str
    sender: str
    body: str
    reply_to: str | None = None


def apply_room_message(hub: Hub, message: RoomMessage) -> bool:
    """Returns False if the event had already been applied."""
    if message.sender == hub.config.bot_user_id:
        return False
    with hub.engine.begin() as conn:
        if not bot_store.mark_processed(conn, message.event_id, hub.clock.now_ms()):
            return False
        consultation = store.consultation_for_room(conn, message.room_id)
        if consultation is None:
            return True
        answer = _answer(conn, hub, consultation, message)
        if answer:
            bot_store.queue_message(
                conn, message.room_id, f"reply-{message.event_id}",
                {"msgtype": "m.notice", "body": answer, "m.relates_to": {"m.in_reply_to": {"event_id": message.event_id}}},
                "reply", hub.clock.now_ms(),
            )
    return True


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
        statement = service.submit_statement_in(conn, hub, member, consultation, question_id, command.text, "room")
        if statement.status is StatementStatus.PENDING:
            return f"Thank you. Your statement is number {statement.number}; a facilitator will review it before voting."
        return f"Thank you. Your statement is number {statement.number}."
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
