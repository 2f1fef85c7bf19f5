"""Moderation cases, their sealed evidence and decisions. Sealing and opening happen in the
service (it holds the key); this module stores bytes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, insert, select, update
from sqlalchemy.exc import IntegrityError

from crossline.domain.moderation import Action, CaseStatus, Category
from crossline.storage.schema import moderation_cases as cases
from crossline.storage.schema import moderation_decisions as decisions
from crossline.storage.schema import moderation_evidence as evidence
from crossline.storage.schema import unmask_partials, unmask_requests

# A case deleted by retention: a tombstone that keeps its number (not a CaseStatus: no reader
# of cases ever sees one, get_case and queue leave it out).
DELETED = "deleted"


@dataclass(frozen=True)
class Case:
    id: int
    source: str
    category: Category
    urgent: bool
    status: CaseStatus
    room_id: str | None
    event_id: str | None
    reported_user: str | None
    reporter_member_id: int | None
    reporter_user_id: str | None
    reason_sealed: bytes | None
    contact_sealed: bytes | None
    reporter_wants_action: bool
    assigned_to: int | None
    created_at: int


@dataclass(frozen=True)
class Decision:
    id: int
    case_id: int
    action: Action
    reason: str  # as the moderators wrote it once the service opened it; "" as stored
    proposed_by: int
    agreed_by: int | None
    status: str
    on_appeal: bool
    created_at: int
    reason_sealed: bytes | None = None


def _case(row) -> Case:
    return Case(row.id, row.source, Category(row.category), row.urgent, CaseStatus(row.status), row.room_id,
                row.event_id, row.reported_user, row.reporter_member_id, row.reporter_user_id, row.reason_sealed,
                row.contact_sealed, row.reporter_wants_action, row.assigned_to, row.created_at)


def add_case(conn: Connection, *, source: str, category: Category, urgent: bool, now_ms: int,
             synapse_report: str | None = None, room_id: str | None = None, event_id: str | None = None,
             reported_user: str | None = None, reporter_member_id: int | None = None,
             reporter_user_id: str | None = None, reason_sealed: bytes | None = None,
             contact_sealed: bytes | None = None, status_token_hash: str | None = None) -> int | None:
    """The new case's id, or None when this Synapse report was taken in already."""
    values = dict(source=source, synapse_report=synapse_report, category=category.value, urgent=urgent,
                  status=CaseStatus.OPEN.value, room_id=room_id, event_id=event_id, reported_user=reported_user,
                  reporter_member_id=reporter_member_id, reporter_user_id=reporter_user_id,
                  reason_sealed=reason_sealed, contact_sealed=contact_sealed, status_token_hash=status_token_hash,
                  created_at=now_ms, updated_at=now_ms)
    if synapse_report is not None:
        try:
            with conn.begin_nested():
                return conn.execute(insert(cases).values(**values)).inserted_primary_key[0]
        except IntegrityError:
            return None
    return conn.execute(insert(cases).values(**values)).inserted_primary_key[0]


def get_case(conn: Connection, case_id: int) -> Case | None:
    """None for a number never used and for a case deleted by retention alike."""
    row = conn.execute(select(cases).where(cases.c.id == case_id, cases.c.status != DELETED)).first()
    return _case(row) if row else None


def case_for_status_token(conn: Connection, token_hash: str) -> Case | None:
    row = conn.execute(select(cases).where(cases.c.status_token_hash == token_hash)).first()
    return _case(row) if row else None


def case_for_appeal_token(conn: Connection, token_hash: str) -> Case | None:
    row = conn.execute(select(cases).where(cases.c.appeal_token_hash == token_hash)).first()
    return _case(row) if row else None


def set_appeal_token(conn: Connection, case_id: int, token_hash: str) -> None:
    conn.execute(update(cases).where(cases.c.id == case_id).values(appeal_token_hash=token_hash))


# What a deleted case's decisions may still hold on the homeserver, which a lift in another case
# must not undo (storage/appeals.standing), and the lift that ends it.
HOLDING = frozenset({Action.KICK, Action.BAN_ROOM, Action.BAN_ALL, Action.SUSPEND, Action.SHADOW_BAN, Action.LIFT})


def delete_closed_before(conn: Connection, before_ms: int) -> list[int]:
    """Retention: closed and decided cases untouched since `before_ms` lose everything they hold,
    and stay only as a numbered tombstone (status "deleted"), so that no later case takes the number
    their audit entries carry and a Matrix report read again is not taken in as a new case. A
    tombstone keeps the reported account, the case's room and its decisions' actions (no reasons)
    only while a decision carried out may still hold something on the homeserver (a ban, a
    suspension): what a lift in another case must leave in place. Unmasking requests on the case go
    with it. Room-report keys go too: they derive from who reported which room."""
    ids = [r[0] for r in conn.execute(select(cases.c.id).where(
        cases.c.status.in_([CaseStatus.DECIDED.value, CaseStatus.CLOSED.value]), cases.c.updated_at < before_ms))]
    if not ids:
        return ids
    conn.execute(evidence.delete().where(evidence.c.case_id.in_(ids)))
    requests = select(unmask_requests.c.id).where(unmask_requests.c.case_id.in_(ids))
    conn.execute(unmask_partials.delete().where(unmask_partials.c.request_id.in_(requests)))
    conn.execute(unmask_requests.delete().where(unmask_requests.c.case_id.in_(ids)))
    held = and_(decisions.c.case_id.in_(ids), decisions.c.status == "done",
                decisions.c.action.in_([a.value for a in HOLDING]))
    conn.execute(decisions.delete().where(decisions.c.case_id.in_(ids), ~held))
    conn.execute(update(decisions).where(held).values(reason="", reason_sealed=None))
    holding = select(decisions.c.id).where(decisions.c.case_id == cases.c.id).exists()
    conn.execute(update(cases).where(cases.c.id.in_(ids)).values(
        status=DELETED, category=Category.OTHER.value, urgent=False, event_id=None,
        reporter_member_id=None, reporter_user_id=None, reason_sealed=None, contact_sealed=None,
        status_token_hash=None, appeal_token_hash=None, assigned_to=None, reporter_wants_action=True,
        synapse_report=case(
            (cases.c.synapse_report.like("room_reports:%"), None), else_=cases.c.synapse_report),
        room_id=case((holding, cases.c.room_id), else_=None),
        reported_user=case((holding, cases.c.reported_user), else_=None)))
    return ids


def queue(conn: Connection) -> list[Case]:
    """Open work first, urgent first, oldest first; then the rest, newest first."""
    rows = conn.execute(select(cases).where(cases.c.status != DELETED).order_by(
        cases.c.status.in_([CaseStatus.DECIDED.value, CaseStatus.CLOSED.value]), cases.c.urgent.desc(),
        cases.c.created_at))
    return [_case(r) for r in rows]


def set_status(conn: Connection, case_id: int, status: CaseStatus, now_ms: int) -> None:
    conn.execute(update(cases).where(cases.c.id == case_id).values(status=status.value, updated_at=now_ms))


def triage(conn: Connection, case_id: int, category: Category, urgent: bool, assigned_to: int | None, now_ms: int) -> None:
    conn.execute(update(cases).where(cases.c.id == case_id).values(
        category=category.value, urgent=urgent, assigned_to=assigned_to, updated_at=now_ms))


def set_reporter_choice(conn: Connection, case_id: int, wants_action: bool, now_ms: int) -> None:
    conn.execute(update(cases).where(cases.c.id == case_id).values(reporter_wants_action=wants_action, updated_at=now_ms))


def add_evidence(conn: Connection, case_id: int, kind: str, mime: str, sealed: bytes, now_ms: int) -> None:
    conn.execute(insert(evidence).values(case_id=case_id, kind=kind, mime=mime, sealed=sealed, created_at=now_ms))


def list_evidence(conn: Connection, case_id: int) -> list[tuple[int, str, str, bytes, int]]:
    return [tuple(r) for r in conn.execute(
        select(evidence.c.id, evidence.c.kind, evidence.c.mime, evidence.c.sealed, evidence.c.created_at)
        .where(evidence.c.case_id == case_id).order_by(evidence.c.id))]


def add_decision(conn: Connection, case_id: int, action: Action, reason_sealed: bytes, proposed_by: int,
                 status: str, on_appeal: bool, now_ms: int) -> int:
    return conn.execute(insert(decisions).values(
        case_id=case_id, action=action.value, reason="", reason_sealed=reason_sealed, proposed_by=proposed_by,
        status=status, on_appeal=on_appeal, created_at=now_ms)).inserted_primary_key[0]


def _decision(r) -> Decision:
    return Decision(r.id, r.case_id, Action(r.action), r.reason, r.proposed_by, r.agreed_by, r.status, r.on_appeal,
                    r.created_at, r.reason_sealed)


def list_decisions(conn: Connection, case_id: int) -> list[Decision]:
    return [_decision(r) for r in conn.execute(select(decisions).where(decisions.c.case_id == case_id)
                                               .order_by(decisions.c.id))]


def clear_reasons(conn: Connection) -> list[tuple[int, str]]:
    """(decision, reason) for reasons still stored in clear (written before migration 0015)."""
    return [tuple(r) for r in conn.execute(select(decisions.c.id, decisions.c.reason).where(decisions.c.reason != ""))]


def seal_reason(conn: Connection, decision_id: int, reason_sealed: bytes) -> None:
    conn.execute(update(decisions).where(decisions.c.id == decision_id).values(reason="", reason_sealed=reason_sealed))


def finish_decision(conn: Connection, decision_id: int, status: str, now_ms: int, agreed_by: int | None = None) -> bool:
    values = {"status": status, "executed_at": now_ms}
    if agreed_by is not None:
        values["agreed_by"] = agreed_by
    return conn.execute(update(decisions).where(and_(decisions.c.id == decision_id, decisions.c.status == "pending"))
                        .values(**values)).rowcount == 1


def lock_case(conn: Connection, case_id: int) -> None:
    """Until the caller commits, no other moderator's decision or agreement on this case can read
    it: two at once are taken one after the other (then the second sees the first's claim). On
    SQLite the savepoint opens the transaction with BEGIN IMMEDIATE (storage/db.py), the whole
    database's write lock; on PostgreSQL the case's row is locked."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(cases.c.id).where(cases.c.id == case_id).with_for_update())
    else:
        with conn.begin_nested():
            pass


def claim_agreement(conn: Connection, case_id: int, member_id: int) -> int:
    """Marks the case's pending decisions as agreed by this moderator, before they are carried out;
    returns how many were still unclaimed."""
    return conn.execute(update(decisions).where(and_(
        decisions.c.case_id == case_id, decisions.c.status == "pending", decisions.c.agreed_by.is_(None)))
        .values(agreed_by=member_id)).rowcount


def interrupted_decisions(conn: Connection) -> list[Decision]:
    """Decisions that were being carried out when the hub stopped: pending, and either agreed to
    or on a case no longer waiting for a second moderator."""
    query = select(decisions).join(cases, cases.c.id == decisions.c.case_id).where(and_(
        decisions.c.status == "pending",
        (decisions.c.agreed_by.is_not(None)) | (cases.c.status != CaseStatus.AWAITING_SECOND.value)))
    return [_decision(row) for row in conn.execute(query.order_by(decisions.c.id))]
