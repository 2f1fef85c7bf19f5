"""Which case a room report joins: the reporter's latest case about that room, and how much her
repeated reports have added to it. Cases and evidence themselves are in `moderation`."""

from __future__ import annotations

from sqlalchemy import Connection, select

from crossline.storage.schema import moderation_cases as cases
from crossline.storage.schema import moderation_evidence as evidence

SOURCE = "matrix_room"


def latest_case(conn: Connection, reporter_user_id: str, room_id: str) -> tuple[int, str] | None:
    """(id, status) of this reporter's newest room report case about this room, if any."""
    row = conn.execute(select(cases.c.id, cases.c.status).where(
        cases.c.source == SOURCE, cases.c.reporter_user_id == reporter_user_id, cases.c.room_id == room_id,
    ).order_by(cases.c.id.desc()).limit(1)).first()
    return (row.id, row.status) if row else None


def sealed_evidence(conn: Connection, case_id: int, kind: str) -> list[bytes]:
    """One kind of a case's evidence, sealed, oldest first."""
    return list(conn.execute(select(evidence.c.sealed).where(
        evidence.c.case_id == case_id, evidence.c.kind == kind).order_by(evidence.c.id)).scalars())
