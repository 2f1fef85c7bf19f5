"""Moderator keys, the escrow, pseudonyms (sealed links only) and unmasking requests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, update

from crossline.storage.schema import (
    escrow_shares,
    escrows,
    members,
    moderator_keys,
    pseudonyms,
    unmask_requests,
    unmask_shares,
)


@dataclass(frozen=True)
class Escrow:
    id: int
    public_key: bytes
    threshold: int
    holders: list[int]


def set_moderator_key(conn: Connection, member_id: int, public_key: bytes, salt: bytes, encrypted: bytes,
                      now_ms: int) -> None:
    conn.execute(delete(moderator_keys).where(moderator_keys.c.member_id == member_id))
    conn.execute(insert(moderator_keys).values(member_id=member_id, public_key=public_key, salt=salt,
                                               encrypted_private_key=encrypted, created_at=now_ms))


def moderator_key(conn: Connection, member_id: int) -> tuple[bytes, bytes, bytes] | None:
    row = conn.execute(select(moderator_keys.c.public_key, moderator_keys.c.salt, moderator_keys.c.encrypted_private_key)
                       .where(moderator_keys.c.member_id == member_id)).first()
    return tuple(row) if row else None


def members_with_keys(conn: Connection) -> list[int]:
    return [r[0] for r in conn.execute(select(moderator_keys.c.member_id).order_by(moderator_keys.c.member_id))]


def add_escrow(conn: Connection, public_key: bytes, threshold: int, sealed_shares: dict[int, bytes], now_ms: int) -> int:
    escrow_id = conn.execute(insert(escrows).values(public_key=public_key, threshold=threshold, created_at=now_ms)
                             ).inserted_primary_key[0]
    for member_id, sealed in sealed_shares.items():
        conn.execute(insert(escrow_shares).values(escrow_id=escrow_id, member_id=member_id, sealed_share=sealed))
    return escrow_id


def _escrow(conn: Connection, row) -> Escrow:
    holders = [r[0] for r in conn.execute(select(escrow_shares.c.member_id).where(escrow_shares.c.escrow_id == row.id))]
    return Escrow(row.id, row.public_key, row.threshold, holders)


def current_escrow(conn: Connection) -> Escrow | None:
    row = conn.execute(select(escrows).order_by(escrows.c.id.desc()).limit(1)).first()
    return _escrow(conn, row) if row else None


def get_escrow(conn: Connection, escrow_id: int) -> Escrow | None:
    row = conn.execute(select(escrows).where(escrows.c.id == escrow_id)).first()
    return _escrow(conn, row) if row else None


def sealed_share(conn: Connection, escrow_id: int, member_id: int) -> bytes | None:
    return conn.execute(select(escrow_shares.c.sealed_share).where(
        escrow_shares.c.escrow_id == escrow_id, escrow_shares.c.member_id == member_id)).scalar()


def tag_taken(conn: Connection, consultation_id: int, tag: str) -> bool:
    return conn.execute(select(pseudonyms.c.member_id).where(
        pseudonyms.c.consultation_id == consultation_id, pseudonyms.c.person_tag == tag)).first() is not None


def tags_taken(conn: Connection, pairs: list[tuple[int, str]]) -> set[tuple[int, str]]:
    """Of these (consultation, tag) pairs, those that have a pseudonym."""
    if not pairs:
        return set()
    consultation_ids = {c for c, _ in pairs}
    rows = conn.execute(select(pseudonyms.c.consultation_id, pseudonyms.c.person_tag).where(
        pseudonyms.c.consultation_id.in_(consultation_ids), pseudonyms.c.person_tag.in_({t for _, t in pairs})))
    return {(r[0], r[1]) for r in rows} & set(pairs)


def add_pseudonym(conn: Connection, member_id: int, consultation_id: int, tag: str, display_name: str, escrow_id: int,
                  sealed_link: bytes, now_ms: int) -> None:
    conn.execute(insert(pseudonyms).values(member_id=member_id, consultation_id=consultation_id, person_tag=tag,
                                           display_name=display_name, escrow_id=escrow_id, sealed_link=sealed_link,
                                           created_at=now_ms))


def display_names(conn: Connection) -> list[str]:
    return [r[0] for r in conn.execute(select(pseudonyms.c.display_name))]


def pseudonym_of_member(conn: Connection, member_id: int):
    """The pseudonym row if this member is a pseudonym, else None."""
    return conn.execute(select(pseudonyms).where(pseudonyms.c.member_id == member_id)).first()


def consultations_of_pseudonyms(conn: Connection, member_ids: set[int]) -> dict[int, int]:
    """{member id: its consultation} for those of these members who are pseudonyms."""
    if not member_ids:
        return {}
    return dict(conn.execute(select(pseudonyms.c.member_id, pseudonyms.c.consultation_id)
                             .where(pseudonyms.c.member_id.in_(member_ids))).all())


def pseudonym_by_user_id(conn: Connection, user_id: str):
    return conn.execute(select(pseudonyms).join(members, members.c.id == pseudonyms.c.member_id)
                        .where(members.c.matrix_user_id == user_id)).first()


def add_request(conn: Connection, case_id: int, pseudonym_member_id: int, reason: str, requested_by: int,
                now_ms: int) -> int:
    return conn.execute(insert(unmask_requests).values(
        case_id=case_id, pseudonym_member_id=pseudonym_member_id, reason=reason, requested_by=requested_by,
        status="open", created_at=now_ms)).inserted_primary_key[0]


def get_request(conn: Connection, request_id: int):
    return conn.execute(select(unmask_requests).where(unmask_requests.c.id == request_id)).first()


def requests_for_case(conn: Connection, case_id: int) -> list:
    return list(conn.execute(select(unmask_requests).where(unmask_requests.c.case_id == case_id)
                             .order_by(unmask_requests.c.id)))


def add_share(conn: Connection, request_id: int, member_id: int, index: int, share: bytes) -> bool:
    if conn.execute(select(unmask_shares.c.member_id).where(unmask_shares.c.request_id == request_id,
                                                            unmask_shares.c.member_id == member_id)).first():
        return False
    conn.execute(insert(unmask_shares).values(request_id=request_id, member_id=member_id, share_index=index,
                                              share=share))
    return True


def shares(conn: Connection, request_id: int) -> list[tuple[int, bytes]]:
    return [(r.share_index, r.share) for r in conn.execute(
        select(unmask_shares).where(unmask_shares.c.request_id == request_id))]


def share_count(conn: Connection, request_id: int) -> int:
    return conn.execute(select(func.count()).select_from(unmask_shares)
                        .where(unmask_shares.c.request_id == request_id)).scalar()


def finish_request(conn: Connection, request_id: int, status: str) -> None:
    conn.execute(delete(unmask_shares).where(unmask_shares.c.request_id == request_id))
    conn.execute(update(unmask_requests).where(unmask_requests.c.id == request_id).values(status=status))
