from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from crossline.domain.records import Invitation
from crossline.storage.schema import invitations


def add_invitation(
    conn: Connection,
    token_hash: str,
    line_id: int,
    side_id: int | None,
    roles: frozenset[str],
    created_by: int,
    now_ms: int,
    expires_at: int,
) -> int:
    return conn.execute(
        insert(invitations).values(
            token_hash=token_hash,
            line_id=line_id,
            side_id=side_id,
            roles=",".join(sorted(roles)),
            created_by=created_by,
            created_at=now_ms,
            expires_at=expires_at,
        )
    ).inserted_primary_key[0]


def _invitation(row) -> Invitation:
    return Invitation(
        id=row.id,
        line_id=row.line_id,
        side_id=row.side_id,
        roles=frozenset(row.roles.split(",")),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        member_id=row.member_id,
    )


def find_by_token_hash(conn: Connection, token_hash: str) -> Invitation | None:
    row = conn.execute(select(invitations).where(invitations.c.token_hash == token_hash)).first()
    return _invitation(row) if row else None


def pending_token_hashes(conn: Connection, now_ms: int) -> list[str]:
    return list(
        conn.execute(
            select(invitations.c.token_hash).where(
                invitations.c.used_at.is_(None), invitations.c.expires_at > now_ms
            )
        ).scalars()
    )


def list_invitations(conn: Connection, line_id: int | None = None) -> list[Invitation]:
    query = select(invitations).order_by(invitations.c.created_at.desc())
    if line_id is not None:
        query = query.where(invitations.c.line_id == line_id)
    return [_invitation(row) for row in conn.execute(query).all()]


def mark_used(conn: Connection, invitation_id: int, member_id: int, now_ms: int) -> bool:
    """Mark used only if still unused: two racing registrations cannot both take it."""
    result = conn.execute(
        update(invitations)
        .where(invitations.c.id == invitation_id, invitations.c.used_at.is_(None))
        .values(used_at=now_ms, member_id=member_id)
    )
    return result.rowcount == 1
