"""Live sessions' rows. Keys are never written here; participants only while a session runs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from crossline.domain.live import LiveStatus
from crossline.domain.records import Room
from crossline.storage.schema import live_interpreters, live_participants, live_sessions, live_side_totals, rooms


@dataclass(frozen=True)
class LiveSession:
    id: int
    public_id: str
    line_id: int
    consultation_id: int | None
    hub_room_id: int | None
    title: str
    status: LiveStatus
    scheduled_at: int | None
    janus_room_id: int | None
    epoch: int
    keys_to_room: bool
    created_by: int
    created_at: int
    ended_at: int | None


def _session(row) -> LiveSession:
    values = dict(row._mapping)
    values["status"] = LiveStatus(values["status"])
    return LiveSession(**values)


def add_session(conn: Connection, public_id: str, line_id: int, consultation_id: int | None, hub_room_id: int | None,
                title: str, status: LiveStatus, scheduled_at: int | None, created_by: int, now_ms: int) -> LiveSession:
    conn.execute(insert(live_sessions).values(
        public_id=public_id, line_id=line_id, consultation_id=consultation_id, hub_room_id=hub_room_id, title=title,
        status=status.value, scheduled_at=scheduled_at, created_by=created_by, created_at=now_ms))
    return get_session(conn, public_id)


def get_session(conn: Connection, public_id: str) -> LiveSession | None:
    row = conn.execute(select(live_sessions).where(live_sessions.c.public_id == public_id)).first()
    return _session(row) if row else None


def sessions_of(conn: Connection, consultation_id: int | None = None, hub_room_id: int | None = None,
                line_id: int | None = None) -> list[LiveSession]:
    query = select(live_sessions).order_by(live_sessions.c.created_at.desc(), live_sessions.c.id.desc())
    if line_id is not None:
        query = query.where(live_sessions.c.line_id == line_id, live_sessions.c.hub_room_id.is_not(None))
    if consultation_id is not None:
        query = query.where(live_sessions.c.consultation_id == consultation_id)
    if hub_room_id is not None:
        query = query.where(live_sessions.c.hub_room_id == hub_room_id)
    return [_session(row) for row in conn.execute(query)]


def room_by_row_id(conn: Connection, hub_room_id: int | None) -> Room | None:
    row = conn.execute(select(rooms).where(rooms.c.id == hub_room_id)).first() if hub_room_id is not None else None
    return Room(**row._mapping) if row else None


def unended(conn: Connection) -> list[LiveSession]:
    return [_session(row) for row in conn.execute(
        select(live_sessions).where(live_sessions.c.status != LiveStatus.ENDED.value))]


def set_status(conn: Connection, session_id: int, status: LiveStatus, now_ms: int | None = None) -> None:
    values = {"status": status.value}
    if status is LiveStatus.ENDED:
        values["ended_at"] = now_ms
    conn.execute(update(live_sessions).where(live_sessions.c.id == session_id).values(**values))


def set_engine_room(conn: Connection, session_id: int, janus_room_id: int | None) -> None:
    conn.execute(update(live_sessions).where(live_sessions.c.id == session_id).values(janus_room_id=janus_room_id))


def next_epoch(conn: Connection, session_id: int) -> int:
    """The session's next epoch number (numbers keep rising across restarts; keys do not survive them)."""
    conn.execute(update(live_sessions).where(live_sessions.c.id == session_id)
                 .values(epoch=live_sessions.c.epoch + 1))
    return conn.execute(select(live_sessions.c.epoch).where(live_sessions.c.id == session_id)).scalar_one()


def stop_keys_to_room(conn: Connection, session_id: int) -> None:
    conn.execute(update(live_sessions).where(live_sessions.c.id == session_id).values(keys_to_room=False))


# -- Interpreters -----------------------------------------------------------------------------------


def set_interpreter(conn: Connection, session_id: int, member_id: int, language: str) -> None:
    conn.execute(delete(live_interpreters).where(live_interpreters.c.live_session_id == session_id,
                                                 live_interpreters.c.member_id == member_id))
    conn.execute(insert(live_interpreters).values(live_session_id=session_id, member_id=member_id, language=language))


def interpreters(conn: Connection, session_id: int) -> dict[int, str]:
    """{member id: language}"""
    return dict(conn.execute(select(live_interpreters.c.member_id, live_interpreters.c.language)
                             .where(live_interpreters.c.live_session_id == session_id)).all())


# -- Participants (while the session runs) --------------------------------------------------------


def add_participant(conn: Connection, session_id: int, member_id: int) -> None:
    exists = conn.execute(select(live_participants.c.member_id).where(
        live_participants.c.live_session_id == session_id, live_participants.c.member_id == member_id)).first()
    if exists is None:
        conn.execute(insert(live_participants).values(live_session_id=session_id, member_id=member_id))


def mark_removed(conn: Connection, session_id: int, member_id: int) -> None:
    add_participant(conn, session_id, member_id)
    conn.execute(update(live_participants).where(live_participants.c.live_session_id == session_id,
                                                 live_participants.c.member_id == member_id).values(removed=True))


def is_removed(conn: Connection, session_id: int, member_id: int) -> bool:
    return bool(conn.execute(select(live_participants.c.removed).where(
        live_participants.c.live_session_id == session_id, live_participants.c.member_id == member_id)).scalar())


def participant_ids(conn: Connection, session_id: int) -> list[int]:
    return [row[0] for row in conn.execute(select(live_participants.c.member_id)
                                           .where(live_participants.c.live_session_id == session_id))]


def finish(conn: Connection, session_id: int, totals: dict[str, tuple[int, int]], now_ms: int) -> None:
    """Ends the session: each side's (seconds, participants) kept; who took part, and who
    interpreted, forgotten."""
    set_status(conn, session_id, LiveStatus.ENDED, now_ms)
    set_engine_room(conn, session_id, None)
    if totals:
        conn.execute(insert(live_side_totals), [
            {"live_session_id": session_id, "side": side, "seconds": seconds, "participants": people}
            for side, (seconds, people) in totals.items()])
    conn.execute(delete(live_participants).where(live_participants.c.live_session_id == session_id))
    conn.execute(delete(live_interpreters).where(live_interpreters.c.live_session_id == session_id))


def side_totals(conn: Connection, session_id: int) -> dict[str, tuple[int, int]]:
    """{side: (seconds, participants)} of an ended session."""
    return {row.side: (row.seconds, row.participants) for row in conn.execute(
        select(live_side_totals).where(live_side_totals.c.live_session_id == session_id))}
