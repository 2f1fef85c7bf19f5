"""Moderator keys, the escrow, pseudonyms (sealed links only), the pool of prepared accounts, and
unmasking requests with their partial decryptions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, update

from crossline.storage.schema import (
    escrow_shares,
    escrows,
    members,
    moderator_keys,
    pseudonym_pool,
    pseudonyms,
    unmask_partials,
    unmask_requests,
)


@dataclass(frozen=True)
class Escrow:
    id: int
    public_key: bytes
    threshold: int
    holders: list[int]
    current_scheme: bool = True  # False: made before threshold decryption (0006), no longer opened


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


THRESHOLD_SCHEME = "threshold-ed25519"


@dataclass(frozen=True)
class Holder:
    member_id: int
    index: int
    sealed_share: bytes
    verification_key: bytes


def add_escrow(conn: Connection, public_key: bytes, threshold: int, holders: list[Holder], now_ms: int) -> int:
    escrow_id = conn.execute(insert(escrows).values(public_key=public_key, threshold=threshold, created_at=now_ms,
                                                    scheme=THRESHOLD_SCHEME)).inserted_primary_key[0]
    for holder in holders:
        conn.execute(insert(escrow_shares).values(
            escrow_id=escrow_id, member_id=holder.member_id, share_index=holder.index,
            sealed_share=holder.sealed_share, verification_key=holder.verification_key))
    return escrow_id


def _escrow(conn: Connection, row) -> Escrow:
    holders = [r[0] for r in conn.execute(select(escrow_shares.c.member_id).where(escrow_shares.c.escrow_id == row.id))]
    return Escrow(row.id, row.public_key, row.threshold, holders, row.scheme == THRESHOLD_SCHEME)


def current_escrow(conn: Connection) -> Escrow | None:
    """The latest escrow, if it is of the current scheme (older ones only keep what was sealed)."""
    row = conn.execute(select(escrows).order_by(escrows.c.id.desc()).limit(1)).first()
    return _escrow(conn, row) if row and row.scheme == THRESHOLD_SCHEME else None


def get_escrow(conn: Connection, escrow_id: int) -> Escrow | None:
    row = conn.execute(select(escrows).where(escrows.c.id == escrow_id)).first()
    return _escrow(conn, row) if row else None


def holders(conn: Connection, escrow_id: int) -> list[Holder]:
    return [Holder(r.member_id, r.share_index, r.sealed_share, r.verification_key) for r in conn.execute(
        select(escrow_shares).where(escrow_shares.c.escrow_id == escrow_id).order_by(escrow_shares.c.share_index))]


def holder(conn: Connection, escrow_id: int, member_id: int) -> Holder | None:
    return next((h for h in holders(conn, escrow_id) if h.member_id == member_id), None)


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
                  sealed_link: bytes, day_ms: int) -> None:
    conn.execute(insert(pseudonyms).values(member_id=member_id, consultation_id=consultation_id, person_tag=tag,
                                           display_name=display_name, escrow_id=escrow_id, sealed_link=sealed_link,
                                           created_at=day_ms, invitation="waiting"))


# -- The pool of accounts made ahead, and invitations in batches ---------------------------------------


def add_to_pool(conn: Connection, user_id: str, ready: bool = False) -> None:
    conn.execute(insert(pseudonym_pool).values(user_id=user_id, ready=ready))


def pool_size(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(pseudonym_pool)).scalar()


def mark_pool_ready(conn: Connection) -> None:
    conn.execute(update(pseudonym_pool).values(ready=True))


def take_from_pool(conn: Connection) -> str | None:
    """One prepared account made at least one batch ago, removed from the pool (None if there is none)."""
    user_id = conn.execute(select(pseudonym_pool.c.user_id).where(pseudonym_pool.c.ready.is_(True)).limit(1)).scalar()
    if user_id is not None:
        conn.execute(delete(pseudonym_pool).where(pseudonym_pool.c.user_id == user_id))
    return user_id


def ready_invitations(conn: Connection) -> list:
    """Pseudonyms seen by an earlier batch and not yet invited: (member id, user id, consultation, name)."""
    return list(conn.execute(
        select(pseudonyms.c.member_id, members.c.matrix_user_id, pseudonyms.c.consultation_id, pseudonyms.c.display_name)
        .join(members, members.c.id == pseudonyms.c.member_id).where(pseudonyms.c.invitation == "ready")
        .order_by(pseudonyms.c.member_id)))


def mark_invited(conn: Connection, member_id: int) -> None:
    conn.execute(update(pseudonyms).where(pseudonyms.c.member_id == member_id).values(invitation="sent"))


def mark_waiting_ready(conn: Connection) -> int:
    return conn.execute(update(pseudonyms).where(pseudonyms.c.invitation == "waiting").values(invitation="ready")).rowcount


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


def add_request(conn: Connection, case_id: int, pseudonym_member_id: int, reason_sealed: bytes, requested_by: int,
                now_ms: int, expires_at: int, blinds: dict[int, tuple[int, bytes, bytes]]) -> int:
    """A new open request with each holder's (index, sealed blind, blind key). A second open
    request for the same pseudonym fails on a unique index (IntegrityError)."""
    request_id = conn.execute(insert(unmask_requests).values(
        case_id=case_id, pseudonym_member_id=pseudonym_member_id, reason="", reason_sealed=reason_sealed,
        requested_by=requested_by, status="open", created_at=now_ms, expires_at=expires_at)).inserted_primary_key[0]
    for member_id, (index, sealed_blind, key) in blinds.items():
        conn.execute(insert(unmask_partials).values(request_id=request_id, member_id=member_id, share_index=index,
                                                    sealed_blind=sealed_blind, blind_key=key))
    return request_id


def clear_request_reasons(conn: Connection) -> list[tuple[int, str]]:
    """(request, reason) for reasons still stored in clear (written before migration 0016)."""
    return [tuple(r) for r in conn.execute(
        select(unmask_requests.c.id, unmask_requests.c.reason).where(unmask_requests.c.reason != ""))]


def seal_request_reason(conn: Connection, request_id: int, reason_sealed: bytes) -> None:
    conn.execute(update(unmask_requests).where(unmask_requests.c.id == request_id)
                 .values(reason="", reason_sealed=reason_sealed))


def get_request(conn: Connection, request_id: int):
    return conn.execute(select(unmask_requests).where(unmask_requests.c.id == request_id)).first()


def requests_for_case(conn: Connection, case_id: int) -> list:
    return list(conn.execute(select(unmask_requests).where(unmask_requests.c.case_id == case_id)
                             .order_by(unmask_requests.c.id)))


def open_requests_ended_by(conn: Connection, now_ms: int, pseudonym_member_id: int | None = None) -> list[int]:
    query = select(unmask_requests.c.id).where(unmask_requests.c.status == "open", unmask_requests.c.expires_at <= now_ms)
    if pseudonym_member_id is not None:
        query = query.where(unmask_requests.c.pseudonym_member_id == pseudonym_member_id)
    return [r[0] for r in conn.execute(query.order_by(unmask_requests.c.id))]


def holder_slot(conn: Connection, request_id: int, member_id: int):
    """Her row for this request: share_index, sealed_blind, blind_key, partial, proof (or None)."""
    return conn.execute(select(unmask_partials).where(unmask_partials.c.request_id == request_id,
                                                      unmask_partials.c.member_id == member_id)).first()


def add_partial(conn: Connection, request_id: int, member_id: int, partial: bytes, proof: bytes) -> bool:
    """False if she has already approved this request."""
    return conn.execute(update(unmask_partials).where(
        unmask_partials.c.request_id == request_id, unmask_partials.c.member_id == member_id,
        unmask_partials.c.partial.is_(None)).values(partial=partial, proof=proof)).rowcount == 1


def partials(conn: Connection, request_id: int) -> list:
    """The approvals given so far: member_id, share_index, blind_key, partial, proof."""
    return list(conn.execute(select(unmask_partials).where(unmask_partials.c.request_id == request_id,
                                                           unmask_partials.c.partial.is_not(None))))


def finish_request(conn: Connection, request_id: int, status: str) -> None:
    """Ends a request (unmasked, failed or expired) and deletes every partial and blind of it."""
    conn.execute(delete(unmask_partials).where(unmask_partials.c.request_id == request_id))
    conn.execute(update(unmask_requests).where(unmask_requests.c.id == request_id).values(status=status))


def open_request_for(conn: Connection, pseudonym_member_id: int) -> int | None:
    return conn.execute(select(unmask_requests.c.id).where(
        unmask_requests.c.pseudonym_member_id == pseudonym_member_id, unmask_requests.c.status == "open")).scalar()


def names_with_accounts(conn: Connection) -> list[tuple[str, str]]:
    """Every pseudonym's (account, display name): nobody else may take a name like it."""
    return [(row[0], row[1]) for row in conn.execute(
        select(members.c.matrix_user_id, pseudonyms.c.display_name)
        .join(members, members.c.id == pseudonyms.c.member_id).where(members.c.matrix_user_id.is_not(None)))]
