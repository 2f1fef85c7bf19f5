from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from crossline.domain.records import Member
from crossline.storage.schema import member_roles, members, web_access_links


def add_member(
    conn: Connection,
    matrix_user_id: str | None,
    line_id: int | None,
    side_id: int | None,
    roles: frozenset[str],
    web_password_hash: str | None,
    now_ms: int,
    web_handle: str | None = None,
) -> int:
    member_id = conn.execute(
        insert(members).values(
            matrix_user_id=matrix_user_id,
            web_handle=web_handle,
            line_id=line_id,
            side_id=side_id,
            web_password_hash=web_password_hash,
            created_at=now_ms,
        )
    ).inserted_primary_key[0]
    set_roles(conn, member_id, roles)
    return member_id


def set_roles(conn: Connection, member_id: int, roles: frozenset[str]) -> None:
    conn.execute(delete(member_roles).where(member_roles.c.member_id == member_id))
    conn.execute(insert(member_roles), [{"member_id": member_id, "role": role} for role in sorted(roles)])


def set_web_password_hash(conn: Connection, member_id: int, password_hash: str) -> None:
    conn.execute(update(members).where(members.c.id == member_id).values(web_password_hash=password_hash))


def _members(conn: Connection, *where) -> list[Member]:
    rows = conn.execute(select(members).where(*where).order_by(members.c.id)).all()
    ids = [row.id for row in rows]
    roles: dict[int, set[str]] = {}
    if ids:
        for member_id, role in conn.execute(
            select(member_roles.c.member_id, member_roles.c.role).where(member_roles.c.member_id.in_(ids))
        ):
            roles.setdefault(member_id, set()).add(role)
    return [
        Member(
            id=row.id,
            matrix_user_id=row.matrix_user_id,
            line_id=row.line_id,
            side_id=row.side_id,
            roles=frozenset(roles.get(row.id, ())),
            web_password_hash=row.web_password_hash,
            created_at=row.created_at,
            web_handle=row.web_handle,
        )
        for row in rows
    ]


def list_members(conn: Connection, line_id: int | None = None) -> list[Member]:
    return _members(conn, *([members.c.line_id == line_id] if line_id is not None else []))


def get_member(conn: Connection, member_id: int) -> Member | None:
    found = _members(conn, members.c.id == member_id)
    return found[0] if found else None


def find_by_user_id(conn: Connection, matrix_user_id: str) -> Member | None:
    found = _members(conn, members.c.matrix_user_id == matrix_user_id)
    return found[0] if found else None


def all_user_ids(conn: Connection) -> list[str]:
    return list(conn.execute(select(members.c.matrix_user_id).where(members.c.matrix_user_id.is_not(None))).scalars())


def count_admins(conn: Connection) -> int:
    return len(conn.execute(select(member_roles.c.member_id).where(member_roles.c.role == "admin")).all())


def add_access_link(conn: Connection, token_hash: str, member_id: int, now_ms: int) -> None:
    conn.execute(insert(web_access_links).values(token_hash=token_hash, member_id=member_id, created_at=now_ms))


def member_for_access_link(conn: Connection, token_hash: str) -> Member | None:
    member_id = conn.execute(
        select(web_access_links.c.member_id).where(web_access_links.c.token_hash == token_hash)).scalar()
    return get_member(conn, member_id) if member_id else None
