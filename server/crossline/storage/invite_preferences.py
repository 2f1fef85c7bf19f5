"""Whom each member takes Matrix invitations from."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from crossline.storage.schema import invite_preferences


def get(conn: Connection, member_id: int) -> str | None:
    return conn.execute(select(invite_preferences.c.invites_from)
                        .where(invite_preferences.c.member_id == member_id)).scalar()


def set_preference(conn: Connection, member_id: int, invites_from: str, now_ms: int) -> None:
    conn.execute(delete(invite_preferences).where(invite_preferences.c.member_id == member_id))
    conn.execute(insert(invite_preferences).values(member_id=member_id, invites_from=invites_from, updated_at=now_ms))


def clear(conn: Connection, member_id: int) -> None:
    conn.execute(delete(invite_preferences).where(invite_preferences.c.member_id == member_id))
