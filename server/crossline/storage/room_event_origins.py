"""Which member sent a room command, in which room, and what it did (the statement it made or
the votes it cast), for edits and deletions."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, exists, insert, select, update

from crossline.domain.consultations import VoteValue
from crossline.storage.consultations import VOTE_NUMBERS
from crossline.storage.schema import room_event_origins, statements, votes


@dataclass(frozen=True)
class Origin:
    member_id: int
    statement_id: int | None
    room_id: str | None  # None: recorded before the room was kept
    votes: tuple[tuple[int, VoteValue], ...]  # a vote event's (statement number, value)


def record(conn: Connection, event_id: str, room_id: str, member_id: int, statement_id: int | None,
           cast: list[tuple[int, VoteValue]], now_ms: int) -> None:
    conn.execute(insert(room_event_origins).values(
        event_id=event_id, room_id=room_id, member_id=member_id, statement_id=statement_id,
        votes=json.dumps([[n, v.value] for n, v in cast]) if cast else None, recorded_at=now_ms))


def origin(conn: Connection, event_id: str) -> Origin | None:
    c = room_event_origins.c
    row = conn.execute(select(c.member_id, c.statement_id, c.room_id, c.votes).where(c.event_id == event_id)).first()
    if row is None:
        return None
    cast = tuple((n, VoteValue(v)) for n, v in json.loads(row.votes)) if row.votes else ()
    return Origin(row.member_id, row.statement_id, row.room_id, cast)


def set_votes(conn: Connection, event_id: str, cast: list[tuple[int, VoteValue]]) -> None:
    conn.execute(update(room_event_origins).where(room_event_origins.c.event_id == event_id)
                 .values(votes=json.dumps([[n, v.value] for n, v in cast]) if cast else None))


def drop_votes(conn: Connection, consultation_id: int, member_id: int, cast: list[tuple[int, VoteValue]]) -> None:
    """Her votes on these statements, where each is still the value given (a later vote of hers on
    the same statement, from another message, stays)."""
    for number, value in cast:
        conn.execute(delete(votes).where(
            votes.c.member_id == member_id, votes.c.consultation_id == consultation_id,
            votes.c.value == VOTE_NUMBERS[value],
            votes.c.statement_id == select(statements.c.id).where(
                statements.c.consultation_id == consultation_id, statements.c.number == number).scalar_subquery()))


def set_statement_text(conn: Connection, statement_id: int, text: str) -> None:
    """Her edit of a pending statement: its new words, marked as edited so that approval must be
    of the words the facilitator read (services/consultations.moderate_in)."""
    conn.execute(update(statements).where(statements.c.id == statement_id).values(text=text))
    conn.execute(update(room_event_origins).where(room_event_origins.c.statement_id == statement_id)
                 .values(edited=True))


def statement_edited(conn: Connection, statement_id: int) -> bool:
    c = room_event_origins.c
    return bool(conn.execute(select(exists().where(and_(c.statement_id == statement_id, c.edited)))).scalar())


def forget_before(conn: Connection, before_ms: int) -> int:
    return conn.execute(delete(room_event_origins).where(room_event_origins.c.recorded_at < before_ms)).rowcount
