"""Which member sent a room command, and the statement it made (for edits and deletions)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from crossline.storage.schema import room_event_origins, statements


@dataclass(frozen=True)
class Origin:
    member_id: int
    statement_id: int | None


def record(conn: Connection, event_id: str, member_id: int, statement_id: int | None, now_ms: int) -> None:
    conn.execute(insert(room_event_origins).values(event_id=event_id, member_id=member_id, statement_id=statement_id,
                                                   recorded_at=now_ms))


def origin(conn: Connection, event_id: str) -> Origin | None:
    row = conn.execute(select(room_event_origins.c.member_id, room_event_origins.c.statement_id)
                       .where(room_event_origins.c.event_id == event_id)).first()
    return Origin(row.member_id, row.statement_id) if row else None


def set_statement_text(conn: Connection, statement_id: int, text: str) -> None:
    conn.execute(update(statements).where(statements.c.id == statement_id).values(text=text))


def forget_before(conn: Connection, before_ms: int) -> int:
    return conn.execute(delete(room_event_origins).where(room_event_origins.c.recorded_at < before_ms)).rowcount
