"""Web sessions and one-time set-up tokens, both stored only as SHA-256 hashes."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from crossline.storage.schema import setup_tokens, web_sessions


def add_session(conn: Connection, id_hash: str, member_id: int, now_ms: int, expires_at: int) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now_ms))
    conn.execute(insert(web_sessions).values(id_hash=id_hash, member_id=member_id, created_at=now_ms, expires_at=expires_at))


def session_member_id(conn: Connection, id_hash: str, now_ms: int) -> int | None:
    return conn.execute(
        select(web_sessions.c.member_id).where(web_sessions.c.id_hash == id_hash, web_sessions.c.expires_at > now_ms)
    ).scalar()


def remove_session(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == id_hash))


def add_setup_token(conn: Connection, token_hash: str, now_ms: int, expires_at: int) -> None:
    conn.execute(insert(setup_tokens).values(token_hash=token_hash, created_at=now_ms, expires_at=expires_at))


def use_setup_token(conn: Connection, token_hash: str, now_ms: int) -> bool:
    result = conn.execute(
        update(setup_tokens)
        .where(
            setup_tokens.c.token_hash == token_hash,
            setup_tokens.c.used_at.is_(None),
            setup_tokens.c.expires_at > now_ms,
        )
        .values(used_at=now_ms)
    )
    return result.rowcount == 1


def setup_token_valid(conn: Connection, token_hash: str, now_ms: int) -> bool:
    return (
        conn.execute(
            select(setup_tokens.c.token_hash).where(
                setup_tokens.c.token_hash == token_hash,
                setup_tokens.c.used_at.is_(None),
                setup_tokens.c.expires_at > now_ms,
            )
        ).first()
        is not None
    )
