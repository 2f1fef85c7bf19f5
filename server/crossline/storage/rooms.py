from __future__ import annotations

from sqlalchemy import Connection, insert, select

from crossline.domain.records import Room
from crossline.storage.schema import members, rooms


def add_room(
    conn: Connection, room_id: str, line_id: int, template: str, name: str, created_by: int, now_ms: int
) -> int:
    return conn.execute(
        insert(rooms).values(
            room_id=room_id, line_id=line_id, template=template, name=name, created_by=created_by, created_at=now_ms
        )
    ).inserted_primary_key[0]


def list_rooms(conn: Connection, line_id: int | None = None) -> list[Room]:
    query = select(rooms).order_by(rooms.c.created_at.desc())
    if line_id is not None:
        query = query.where(rooms.c.line_id == line_id)
    return [Room(**row._mapping) for row in conn.execute(query).all()]


def creator_user_id(conn: Connection, room_id: str | None) -> str | None:
    """The Matrix account that created a hub room (its facilitator), or None for a room the hub
    did not create."""
    if room_id is None:
        return None
    return conn.execute(select(members.c.matrix_user_id).join(rooms, rooms.c.created_by == members.c.id)
                        .where(rooms.c.room_id == room_id)).scalar()
