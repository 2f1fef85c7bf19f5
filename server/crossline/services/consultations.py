"""Consultations: design, phases, statements, moderation, votes. Each public function is one
transaction; the `*_in` functions take the caller's connection so that the bot can apply a Matrix
event, record it as processed and queue its reply in a single commit.

What the bot should say in the consultation's room is queued in the outbox inside the same
transaction as the change it announces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from crossline.domain import consultations as engine
from crossline.domain import room_messages
from crossline.domain.consultations import Consultation, Participant, Phase, Refusal, Statement, StatementStatus, VoteValue
from crossline.domain.records import Line, Member, Side
from crossline.errors import Conflict, CrosslineError, NotAllowed, NotFound
from crossline.services import pseudonyms
from crossline.services import rooms as room_service
from crossline.services.hub import Hub
from crossline.services.onboarding import require
from crossline.storage import bot as bot_store
from crossline.storage import consultations as store
from crossline.storage import lines as line_store
from crossline.storage import members as member_store
from crossline.storage import pseudonyms as pseudonym_store
from crossline.storage import room_event_origins as origins

# Smallest group whose vote counts are shown: below it, a count could identify how someone voted.
MIN_SHOWN_GROUP = 5


def as_participant(member: Member) -> Participant:
    return Participant(member_id=member.id, side_id=member.side_id, is_facilitator=member.has("facilitator"))


def get(conn: Connection, consultation_id: int) -> Consultation:
    consultation = store.get_consultation(conn, consultation_id)
    if consultation is None:
        raise NotFound("There is no such consultation.")
    return consultation


# -- Facilitators -------------------------------------------------------------------------------


def create(hub: Hub, actor: Member, line_id: int, title: str, prompts: Sequence[dict[str, str]],
           side_ids: Sequence[int], premoderation: bool) -> Consultation:
    require(actor, "facilitator")
    with hub.engine.begin() as conn:
        line = line_store.get_line(conn, line_id)
        if line is None:
            raise NotFound("That line does not exist.")
        title, questions, sides = engine.check_design(title, prompts, side_ids, [side.id for side in line.sides])
        consultation_id = store.add_consultation(conn, line_id, title, premoderation, sides, questions, actor.id,
                                                 hub.clock.now_ms())
        return get(conn, consultation_id)


@dataclass(frozen=True)
class FacilitatorView:
    consultation: Consultation
    line: Line
    statements: list[Statement]
    reasons: dict[int, str]
    participation: list[SideParticipation]


def facilitator_view(hub: Hub, actor: Member | None, consultation_id: int) -> FacilitatorView:
    """Every statement with its author's status and the live counts: for facilitators only."""
    require(actor, "facilitator")
    with hub.engine.connect() as conn:
        consultation = get(conn, consultation_id)
        line = line_store.get_line(conn, consultation.line_id)
        statements = store.list_statements(conn, consultation_id)
        reasons = store.moderation_reasons(conn, consultation_id)
    return FacilitatorView(consultation, line, statements, reasons, participation(hub, actor, consultation_id))


async def create_room(hub: Hub, actor: Member | None, consultation_id: int) -> Consultation:
    """The consultation's encrypted room, with every member of its sides who has a Matrix account
    (pseudonyms belong to one consultation each: only this one's are invited)."""
    require(actor, "facilitator")
    with hub.engine.connect() as conn:
        consultation = get(conn, consultation_id)
        invitees = [m.id for m in member_store.list_members(conn, consultation.line_id)
                    if m.matrix_user_id and m.side_id in consultation.eligible_side_ids]
    if consultation.room_id is not None:
        return consultation
    invitees = [i for i in invitees if pseudonyms.own_consultation(hub, i) in (None, consultation_id)]
    room = await room_service.create_room(hub, actor, consultation.line_id, "consultation", consultation.title, "",
                                          invitees)
    return attach_room(hub, actor, consultation_id, room.room_id)


def attach_room(hub: Hub, actor: Member, consultation_id: int, room_id: str) -> Consultation:
    require(actor, "facilitator")
    with hub.engine.begin() as conn:
        consultation = get(conn, consultation_id)
        store.set_room(conn, consultation_id, room_id)
        consultation = get(conn, consultation_id)
        if consultation.phase is not Phase.DRAFT:
            _announce_phase(conn, hub, consultation)
        return consultation


def change_phase(hub: Hub, actor: Member | None, consultation_id: int, target: Phase) -> Consultation:
    require(actor, "facilitator")
    with hub.engine.begin() as conn:
        return change_phase_in(conn, hub, actor, get(conn, consultation_id), target)


def change_phase_in(conn: Connection, hub: Hub, actor: Member, consultation: Consultation, target: Phase) -> Consultation:
    phase = engine.advance(consultation, as_participant(actor), target, store.approved_count(conn, consultation.id))
    store.set_phase(conn, consultation.id, phase, hub.clock.now_ms())
    consultation = engine.with_phase(consultation, phase)
    _announce_phase(conn, hub, consultation)
    return consultation


def moderate(hub: Hub, actor: Member | None, consultation_id: int, number: int, approve: bool,
             reason: str, seen: str | None = None) -> Statement:
    require(actor, "facilitator")
    with hub.engine.begin() as conn:
        return moderate_in(conn, hub, actor, get(conn, consultation_id), number, approve, reason, seen)


def text_revision(text: str) -> str:
    """What a facilitator's approval names besides the number: the words she read."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def moderate_in(conn: Connection, hub: Hub, actor: Member, consultation: Consultation, number: int, approve: bool,
              reason: str, seen: str | None = None) -> Statement:
    """`seen`: the text_revision of the words the facilitator approves (the web form's). Without
    it (`!approve N` in the room), a statement its author edited is not approved: the number alone
    would approve words nobody reviewed (read it, then approve it on the consultation's page)."""
    statement = _statement(conn, consultation, number)
    if approve and seen is not None and seen != text_revision(statement.text):
        raise Conflict(f"Statement {number} was changed by its author after you read it, so it was not approved. "
                       "Read it again and decide.")
    if approve and seen is None and origins.statement_edited(conn, statement.id):
        raise Conflict(f"Statement {number} was edited by its author, so it was not approved here. Read its words on "
                       "the consultation's page and approve it there.")
    status, reason = engine.moderate(consultation, as_participant(actor), statement, approve, reason)
    store.set_statement_status(conn, statement.id, status, reason)
    statement = Statement(statement.id, statement.number, statement.question_id, statement.author_member_id,
                          statement.text, status, statement.seeded)
    if status is StatementStatus.APPROVED:
        _announce_statement(conn, hub, consultation, statement)
    return statement


def seed_statement(hub: Hub, actor: Member | None, consultation_id: int, question_id: int, text: str,
                   submission_id: str | None = None) -> Statement | None:
    """A facilitator's statement, approved at once, to start the conversation."""
    require(actor, "facilitator")
    return submit_statement(hub, actor, consultation_id, question_id, text, "seed", submission_id)


# -- Participants ------------------------------------------------------------------------------


def submit_statement(hub: Hub, member: Member, consultation_id: int, question_id: int, text: str, origin: str,
                     submission_id: str | None = None) -> Statement | None:
    """None when `submission_id` was already applied (a retried form)."""
    with hub.engine.begin() as conn:
        if submission_id and not store.record_submission(conn, member.id, submission_id, hub.clock.now_ms()):
            return None
        return submit_statement_in(conn, hub, member, get(conn, consultation_id), question_id, text, origin)


def submit_statement_in(conn: Connection, hub: Hub, member: Member, consultation: Consultation, question_id: int,
                      text: str, origin: str, announced_by_reply: bool = False) -> Statement:
    """`announced_by_reply`: the caller's reply in the room (the bot's answer to the author's
    message) shows the statement to everyone, so no second announcement is queued."""
    if not (member.has("participant") or member.has("facilitator")):  # a facilitator seeds
        raise NotAllowed("Only participants write statements, and facilitators seed them.")
    existing = store.list_statements(conn, consultation.id)
    text, status, seeded = engine.submit_statement(consultation, as_participant(member), question_id, text, existing)
    _claim_voice(conn, hub, member, consultation.id)
    statement = store.add_statement(conn, consultation.id, question_id, member.id, text, status, seeded, origin,
                                    hub.clock.now_ms())
    if status is StatementStatus.APPROVED and not announced_by_reply:
        _announce_statement(conn, hub, consultation, statement)
    return statement


def withdraw(hub: Hub, member: Member, consultation_id: int, number: int) -> Statement:
    with hub.engine.begin() as conn:
        return withdraw_in(conn, member, get(conn, consultation_id), number)


def withdraw_in(conn: Connection, member: Member, consultation: Consultation, number: int) -> Statement:
    statement = _statement(conn, consultation, number)
    status = engine.withdraw(consultation, as_participant(member), statement)
    store.set_statement_status(conn, statement.id, status)
    return statement


def cast_votes(hub: Hub, member: Member, consultation_id: int, choices: Sequence[tuple[int, VoteValue]],
               submission_id: str | None = None) -> list[int]:
    """Numbers of the statements voted on. All or nothing: one refused vote refuses the message."""
    with hub.engine.begin() as conn:
        if submission_id and not store.record_submission(conn, member.id, submission_id, hub.clock.now_ms()):
            return []
        return cast_votes_in(conn, hub, member, get(conn, consultation_id), choices)


class CountsUnderPseudonym(NotAllowed):
    """Said to her alone: in a room, it would tell everyone that she holds a pseudonym."""


def _under_pseudonym() -> NotAllowed:
    return CountsUnderPseudonym("In this consultation you count once: under your pseudonym if you took one here, and a "
                      "pseudonym only in the consultation it was made for.")


def _claim_voice(conn: Connection, hub: Hub, member: Member, consultation_id: int) -> None:
    """Her own voice in the consultation, claimed in this transaction (see services/pseudonyms)."""
    if pseudonyms.claim_voices(conn, hub, [(member.id, consultation_id)]):
        raise _under_pseudonym()


def cast_votes_in(conn: Connection, hub: Hub, member: Member, consultation: Consultation,
                choices: Sequence[tuple[int, VoteValue]]) -> list[int]:
    require(member, "participant")
    voter = as_participant(member)
    now = hub.clock.now_ms()
    rows = []
    for number, value in choices:
        statement = store.statement_by_number(conn, consultation.id, number)
        engine.vote(consultation, voter, statement, value, number)
        rows.append({"consultation_id": consultation.id, "statement_id": statement.id, "member_id": member.id,
                     "value": value, "voted_at": now})
    _claim_voice(conn, hub, member, consultation.id)
    store.upsert_votes(conn, rows)
    return [number for number, _ in choices]


@dataclass(frozen=True)
class VoteRequest:
    member: Member
    consultation_id: int
    choices: Sequence[tuple[int, VoteValue]]
    submission_id: str | None = None


def cast_vote_batch(conn: Connection, hub: Hub, requests: Sequence[VoteRequest]) -> list[list[int] | CrosslineError]:
    """Many participants' votes checked against one snapshot and written in one statement: what
    lets a 2-core machine take thousands of votes a second with a durable commit for each batch.
    Each request gets its own answer; a refused request changes nothing."""
    now = hub.clock.now_ms()
    snapshots: dict[int, tuple[Consultation, dict[int, Statement]] | CrosslineError] = {}
    applied_before = store.seen_submissions(
        conn, [(r.member.id, r.submission_id) for r in requests if r.submission_id])
    results: list[list[int] | CrosslineError] = []
    accepted: list[tuple[int, VoteRequest, list[tuple[Statement, VoteValue]]]] = []
    for request in requests:
        if not request.member.has("participant"):
            results.append(NotAllowed("Only participants vote."))
            continue
        if request.consultation_id not in snapshots:
            try:
                consultation = get(conn, request.consultation_id)
                snapshots[request.consultation_id] = (consultation, store.ballot_index(conn, consultation.id))
            except CrosslineError as error:
                snapshots[request.consultation_id] = error
        snapshot = snapshots[request.consultation_id]
        if isinstance(snapshot, CrosslineError):
            results.append(snapshot)
            continue
        consultation, statements = snapshot
        if request.member.side_id not in consultation.eligible_side_ids:
            results.append(NotAllowed("This consultation is not open to you."))
            continue
        if request.submission_id and (request.member.id, request.submission_id) in applied_before:
            results.append([])  # a retried request: already applied
            continue
        try:
            voter = as_participant(request.member)
            chosen = []
            for number, value in request.choices:
                statement = statements.get(number)
                engine.vote(consultation, voter, statement, value, number)
                chosen.append((statement, value))
        except CrosslineError as error:
            results.append(error)
            continue
        accepted.append((len(results), request, chosen))
        results.append([number for number, _ in request.choices])
    # Last, just before writing: each voter's own voice claimed (or her pseudonym's found) in this
    # transaction, so that a pseudonym made at this moment and these votes cannot both count.
    masked = pseudonyms.claim_voices(conn, hub, list({(r.member.id, r.consultation_id) for _, r, _ in accepted}))
    rows: dict[tuple[int, int], dict] = {}
    seen_submissions: set[tuple[int, str]] = set()
    for index, request, chosen in accepted:
        key = (request.member.id, request.submission_id or "")
        if (request.member.id, request.consultation_id) in masked:
            results[index] = _under_pseudonym()
            continue
        if request.submission_id and key in seen_submissions:
            results[index] = []  # the same request twice in one batch: applied once
            continue
        for statement, value in chosen:
            # Within a batch too, the latest vote of a participant on a statement wins.
            rows[(statement.id, request.member.id)] = {
                "consultation_id": request.consultation_id, "statement_id": statement.id,
                "member_id": request.member.id, "value": value, "voted_at": now}
        if request.submission_id:
            seen_submissions.add(key)
    store.upsert_votes(conn, list(rows.values()))
    store.record_submissions(conn, seen_submissions, now)
    return results


def _statement(conn: Connection, consultation: Consultation, number: int) -> Statement:
    statement = store.statement_by_number(conn, consultation.id, number)
    if statement is None:
        raise Refusal(f"There is no statement {number} in this consultation.")
    return statement


# -- What people see --------------------------------------------------------------------------


@dataclass(frozen=True)
class SideParticipation:
    side_name: str
    voters: int | None  # None: some, but fewer than MIN_SHOWN_GROUP (a figure that could point at a person)
    votes: int | None
    statements: int


def participation(hub: Hub, actor: Member, consultation_id: int) -> list[SideParticipation]:
    """Live counts by side for facilitators: how many take part, never who voted what, and no
    figure about fewer than MIN_SHOWN_GROUP voters of a side."""
    require(actor, "facilitator")
    with hub.engine.connect() as conn:
        consultation = get(conn, consultation_id)
        line = line_store.get_line(conn, consultation.line_id)
        counts = store.participation_by_side(conn, consultation_id)
    rows = []
    for side in line.sides:
        if side.id not in consultation.eligible_side_ids:
            continue
        voters, votes = counts[side.id]["voters"], counts[side.id]["votes"]
        if 0 < voters < MIN_SHOWN_GROUP:
            voters = votes = None
        rows.append(SideParticipation(side.name, voters, votes, counts[side.id]["statements"]))
    return rows


def consultations_for(hub: Hub, member: Member | None) -> list[Consultation]:
    """What a participant can take part in: open consultations of her line that include her side
    (a pseudonym: only the one it was made for)."""
    require(member, "participant")
    with hub.engine.connect() as conn:
        return consultations_for_in(conn, member)


def consultations_for_in(conn: Connection, member: Member) -> list[Consultation]:
    home = pseudonym_store.consultations_of_pseudonyms(conn, {member.id}).get(member.id)
    return [c for c in store.list_consultations(conn, member.line_id)
            if c.phase is not Phase.DRAFT and member.side_id in c.eligible_side_ids and home in (None, c.id)]


def open_to(hub: Hub, member: Member | None, consultation_id: int) -> Consultation:
    for consultation in consultations_for(hub, member):
        if consultation.id == consultation_id:
            return consultation
    raise NotAllowed("This consultation is not open to you.")


@dataclass(frozen=True)
class ParticipantView:
    consultation: Consultation
    side: Side | None
    ballot: list[Statement]  # approved statements, to vote on
    mine: list[Statement]  # her own, whatever their status
    reasons: dict[int, str]
    my_votes: dict
    pseudonyms_available: bool


def participant_view(hub: Hub, member: Member | None, consultation_id: int) -> ParticipantView:
    """What one participant sees of a consultation open to her: the ballot, her own statements and
    votes; never who wrote or voted what."""
    consultation = open_to(hub, member, consultation_id)
    with hub.engine.connect() as conn:
        statements = store.list_statements(conn, consultation.id)
        reasons = store.moderation_reasons(conn, consultation.id)
        my_votes = store.member_votes(conn, consultation.id, member.id)
        line = line_store.get_line(conn, consultation.line_id)
    mine = [s for s in statements if s.author_member_id == member.id]
    return ParticipantView(
        consultation, line.side(member.side_id) if member.side_id else None,
        [s for s in statements if s.status is StatementStatus.APPROVED], mine,
        {s.id: reasons[s.id] for s in mine if s.id in reasons}, my_votes, pseudonyms.current_escrow(hub) is not None)


def member_by_user_id(conn: Connection, user_id: str) -> Member | None:
    return member_store.find_by_user_id(conn, user_id)


# -- Room announcements (queued in the outbox) -----------------------------------------------


def _queue(conn: Connection, hub: Hub, consultation: Consultation, txn_id: str, body: str, purpose: str = "notice",
           question_id: int | None = None) -> None:
    if consultation.room_id is None:
        return
    bot_store.queue_message(conn, consultation.room_id, txn_id, {"msgtype": "m.notice", "body": body}, purpose,
                            hub.clock.now_ms(), consultation.id, question_id)


def _announce_phase(conn: Connection, hub: Hub, consultation: Consultation) -> None:
    key = f"cl{consultation.id}-{consultation.phase.value}"
    if consultation.phase is Phase.COLLECTING:
        _queue(conn, hub, consultation, key,
               f"“{consultation.title}” is now collecting statements. Reply to a question below with your "
               "statement, or write !say and the question number. Write !help for all commands.")
        for question in consultation.questions:
            _queue(conn, hub, consultation, f"{key}-q{question.id}",
                   f"Question {question.position}: {question.prompt()}\nReply to this message with your statement, "
                   f"or write: !say {question.position} your statement", purpose="question", question_id=question.id)
    elif consultation.phase is Phase.VOTING:
        _queue(conn, hub, consultation, key,
               f"Voting on “{consultation.title}” is open. Vote with !agree 3, !disagree 3 or !pass 3 "
               "(3 = statement number). Your latest vote counts. Votes typed here are seen by others in this room; "
               "to vote privately, start a direct chat with me or use the web page your facilitator gives you.")
        approved = [s for s in store.list_statements(conn, consultation.id) if s.status is StatementStatus.APPROVED]
        for part, lines in enumerate(room_messages.chunked([statement_line(s) for s in approved])):
            _queue(conn, hub, consultation, f"{key}-list{part}", "\n".join(lines))
    elif consultation.phase is Phase.CLOSED:
        _queue(conn, hub, consultation, key, f"Voting on “{consultation.title}” has closed. Thank you for taking part.")


def _announce_statement(conn: Connection, hub: Hub, consultation: Consultation, statement: Statement) -> None:
    if consultation.phase in (Phase.COLLECTING, Phase.VOTING):
        _queue(conn, hub, consultation, f"cl{consultation.id}-{consultation.phase.value}-s{statement.id}",
               statement_line(statement))


def statement_line(statement: Statement) -> str:
    return room_messages.quoted_statement(statement.number, statement.text)
