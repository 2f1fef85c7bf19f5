"""Reports: drafts, releases (exact signed bytes), and what a report is built from."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, insert, select, update

from crossline.storage.schema import consultations, lines, members, reports, sides, statements, votes


@dataclass(frozen=True)
class ReportRecord:
    id: int
    consultation_id: int
    version: int
    narrative: str
    replaces_id: int | None
    released_at: int | None
    sha256: str | None
    delivered_to_room: str | None

    @property
    def released(self) -> bool:
        return self.released_at is not None


_COLUMNS = (reports.c.id, reports.c.consultation_id, reports.c.version, reports.c.narrative, reports.c.replaces_id,
            reports.c.released_at, reports.c.sha256, reports.c.delivered_to_room)


def _record(row) -> ReportRecord:
    return ReportRecord(*row)


def list_reports(conn: Connection, consultation_id: int) -> list[ReportRecord]:
    rows = conn.execute(select(*_COLUMNS).where(reports.c.consultation_id == consultation_id).order_by(reports.c.version))
    return [_record(r) for r in rows]


def get_report(conn: Connection, report_id: int) -> ReportRecord | None:
    row = conn.execute(select(*_COLUMNS).where(reports.c.id == report_id)).first()
    return _record(row) if row else None


def add_draft(conn: Connection, consultation_id: int, replaces_id: int | None, narrative: str, created_by: int,
              now_ms: int) -> int:
    version = (conn.execute(select(func.max(reports.c.version)).where(reports.c.consultation_id == consultation_id))
               .scalar() or 0) + 1
    return conn.execute(insert(reports).values(
        consultation_id=consultation_id, version=version, narrative=narrative, replaces_id=replaces_id,
        created_by=created_by, created_at=now_ms)).inserted_primary_key[0]


def set_narrative(conn: Connection, report_id: int, narrative: str) -> bool:
    """False if the report was released meanwhile (a release never changes)."""
    return conn.execute(update(reports).where(and_(reports.c.id == report_id, reports.c.released_at.is_(None)))
                        .values(narrative=narrative)).rowcount == 1


def release(conn: Connection, report_id: int, document: bytes, sha256: str, room_id: str | None, now_ms: int) -> bool:
    return conn.execute(update(reports).where(and_(reports.c.id == report_id, reports.c.released_at.is_(None)))
                        .values(document=document, sha256=sha256, released_at=now_ms, delivered_to_room=room_id)
                        ).rowcount == 1


def document(conn: Connection, report_id: int) -> bytes | None:
    return conn.execute(select(reports.c.document).where(reports.c.id == report_id)).scalar()


@dataclass(frozen=True)
class ReleaseRow:
    """A release as the Reports list shows it: which consultation round, and whether a later
    release of it replaced this one."""
    record: ReportRecord
    title: str
    line: str
    closed_at: int
    superseded_by: int | None  # the latest version, when newer


def released_reports(conn: Connection) -> list[ReleaseRow]:
    """Every release, newest first, with its consultation's title, line and closing time."""
    latest = (select(reports.c.consultation_id, func.max(reports.c.version).label("version"))
              .where(reports.c.released_at.is_not(None)).group_by(reports.c.consultation_id).subquery())
    rows = conn.execute(select(*_COLUMNS, consultations.c.title, lines.c.name, consultations.c.phase_changed_at,
                               latest.c.version)
                        .join(consultations, consultations.c.id == reports.c.consultation_id)
                        .join(lines, lines.c.id == consultations.c.line_id)
                        .join(latest, latest.c.consultation_id == reports.c.consultation_id)
                        .where(reports.c.released_at.is_not(None))
                        .order_by(reports.c.released_at.desc(), reports.c.id.desc()))
    return [ReleaseRow(_record(r[:8]), r[8], r[9], r[10], r[11] if r[11] > r[2] else None) for r in rows]


def report_material(conn: Connection, consultation_id: int, side_ids: frozenset[int]):
    """(votes as (member, statement, value, time), {member: side name}, {side name: statements by its members})
    for a report: only members of the consultation's sides."""
    side_names = dict(conn.execute(select(sides.c.id, sides.c.name).where(sides.c.id.in_(side_ids))).all())
    member_sides = {m: side_names[s] for m, s in conn.execute(
        select(members.c.id, members.c.side_id).where(members.c.side_id.in_(side_ids))).all()}
    vote_rows = [tuple(r) for r in conn.execute(
        select(votes.c.member_id, votes.c.statement_id, votes.c.value, votes.c.voted_at)
        .where(votes.c.consultation_id == consultation_id))]
    authored: dict[str, int] = {}
    for author, in conn.execute(select(statements.c.author_member_id).where(
            statements.c.consultation_id == consultation_id, statements.c.status == "approved")):
        if author in member_sides:
            authored[member_sides[author]] = authored.get(member_sides[author], 0) + 1
    return vote_rows, member_sides, authored


def phase_changed_at(conn: Connection, consultation_id: int) -> int:
    return conn.execute(select(consultations.c.phase_changed_at).where(consultations.c.id == consultation_id)).scalar()


def releases_of(conn: Connection, consultation_id: int) -> list[tuple[int, int, str, int]]:
    """(version, released at ms, SHA-256, report id) of each release of a consultation, oldest first."""
    return [tuple(r) for r in conn.execute(
        select(reports.c.version, reports.c.released_at, reports.c.sha256, reports.c.id)
        .where(reports.c.consultation_id == consultation_id, reports.c.released_at.is_not(None))
        .order_by(reports.c.version))]
