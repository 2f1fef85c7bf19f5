"""Reports of closed consultations: draft, narrative, signed release, corrections, delivery.

A release stores the signed file's exact bytes and never changes; a correction is a new version
that names the release it replaces. Delivery to a negotiators' room is queued in the outbox in the
release's own transaction, so a released report is delivered once even across a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Engine

from crossline import secrets
from crossline.domain.consultations import Phase, StatementStatus
from crossline.domain.consultations import Consultation
from crossline.domain.live import LiveStatus
from crossline.domain.records import Line, Member, Room
from crossline.errors import Conflict, InvalidInput, NotAllowed, NotFound
from crossline.reports import copies
from crossline.reports.pdf_signature import certificate_fingerprint
from crossline.reports.content import ReportInput, build_report
from crossline.reports.neutral import isolated
from crossline.reports.verdict import Known, Verdict, check
from crossline.reports.signing import fingerprint, sha256, sign_report, signing_key_from_secret
from crossline.services.consultations import get as get_consultation
from crossline.services.hub import Hub
from crossline.services.onboarding import require
from crossline.storage import bot as bot_store
from crossline.storage import lines as line_store
from crossline.storage import live as live_store
from crossline.storage import reports as store
from crossline.storage import rooms as room_store
from crossline.storage.consultations import list_statements
from crossline.storage.reports import ReportRecord

MAX_NARRATIVE = 10_000
NEGOTIATORS_TEMPLATE = "negotiators"
# Released reports are for negotiators, and for the facilitators who made them; drafts for facilitators only.
READER_ROLES = ("negotiator", "facilitator")


def require_reader(actor: Member | None) -> Member:
    if actor is None or not any(actor.has(role) for role in READER_ROLES):
        raise NotAllowed("Only negotiators and facilitators can read released reports.")
    return actor


def _signing_key(hub: Hub):
    # Created on first use for hubs set up before reports existed; 0600 like every secret.
    return signing_key_from_secret(secrets.read_secret(hub.config.paths.secrets_dir, secrets.REPORT_SIGNING_KEY))


def hub_fingerprint(hub: Hub) -> str:
    return fingerprint(bytes(_signing_key(hub).verify_key))


def pdf_certificate_fingerprint(hub: Hub) -> str:
    """The hub's PDF signing certificate (derived from its report key: reports/pdf_signature.py)."""
    return certificate_fingerprint(_signing_key(hub))


def _closed(conn, consultation_id: int):
    consultation = get_consultation(conn, consultation_id)
    if consultation.phase is not Phase.CLOSED:
        raise Conflict("A report can be made once the consultation is closed. Close voting first.")
    return consultation


def start_draft(hub: Hub, actor: Member, consultation_id: int) -> ReportRecord:
    """The draft being written, or a new one: version 1, or a correction of the latest release."""
    require(actor, "facilitator")
    with hub.engine.begin() as conn:
        _closed(conn, consultation_id)
        versions = store.list_reports(conn, consultation_id)
        if versions and not versions[-1].released:
            return versions[-1]
        latest = versions[-1] if versions else None
        report_id = store.add_draft(conn, consultation_id, latest.id if latest else None,
                                    latest.narrative if latest else "", actor.id, hub.clock.now_ms())
        return store.get_report(conn, report_id)


def _report(conn, report_id: int) -> ReportRecord:
    report = store.get_report(conn, report_id)
    if report is None:
        raise NotFound("There is no such report.")
    return report


def save_narrative(hub: Hub, actor: Member, report_id: int, narrative: str) -> ReportRecord:
    require(actor, "facilitator")
    narrative = narrative.replace("\r\n", "\n").strip()
    if len(narrative) > MAX_NARRATIVE:
        raise InvalidInput(f"The narrative is too long ({len(narrative)} characters; at most {MAX_NARRATIVE}).")
    with hub.engine.begin() as conn:
        if not store.set_narrative(conn, _report(conn, report_id).id, narrative):
            raise Conflict("This version is released and can no longer change. Start a correction instead.")
        return store.get_report(conn, report_id)


def content(hub: Hub, report_id: int, released_at_ms: int | None = None) -> dict:
    """What the report says (for a draft: as it would be released now)."""
    with hub.engine.connect() as conn:
        report = _report(conn, report_id)
        consultation = _closed(conn, report.consultation_id)
        line = line_store.get_line(conn, consultation.line_id)
        approved = [s for s in list_statements(conn, consultation.id) if s.status is StatementStatus.APPROVED]
        votes, member_sides, authored = store.report_material(conn, consultation.id, consultation.eligible_side_ids)
        replaced = store.get_report(conn, report.replaces_id) if report.replaces_id else None
        closed_at = store.phase_changed_at(conn, consultation.id)
        live_sessions = [live_store.side_totals(conn, s.id) for s in reversed(live_store.sessions_of(
            conn, consultation_id=consultation.id)) if s.status is LiveStatus.ENDED]
    side_names = [s.name for s in line.sides if s.id in consultation.eligible_side_ids]
    source = ReportInput(
        consultation_id=consultation.id, title=consultation.title, line=line.name, closed_at_ms=closed_at,
        questions=[(q.id, q.position, q.prompt()) for q in consultation.questions],
        statements=[(s.id, s.number, s.question_id, s.text) for s in approved],
        votes=votes, member_sides=member_sides, sides=side_names, narrative=report.narrative,
        version=report.version, statements_by_side=authored, live_sessions=[t for t in live_sessions if t],
        replaces={"version": replaced.version, "sha256": replaced.sha256} if replaced else None,
        hub={"server_name": hub.config.synapse.server_name, "url": hub.config.hub_url},
    )
    return build_report(source, released_at_ms if released_at_ms is not None else hub.clock.now_ms())


def negotiator_rooms(hub: Hub, line_id: int) -> list:
    with hub.engine.connect() as conn:
        return [room for room in room_store.list_rooms(conn, line_id) if room.template == NEGOTIATORS_TEMPLATE]


def release(hub: Hub, actor: Member, report_id: int, room_id: str | None) -> ReportRecord:
    require(actor, "facilitator")
    now = hub.clock.now_ms()
    with hub.engine.connect() as conn:
        consultation_id = _report(conn, report_id).consultation_id
        line_id = get_consultation(conn, consultation_id).line_id
    if room_id and room_id not in {room.room_id for room in negotiator_rooms(hub, line_id)}:
        raise InvalidInput("Choose one of this line's negotiators' rooms, or none.")
    document = sign_report(content(hub, report_id, now), _signing_key(hub))
    digest = sha256(document)
    with hub.engine.begin() as conn:
        if not store.release(conn, report_id, document, digest, room_id or None, now):
            raise Conflict("This version is already released. Start a correction to change it.")
        report = store.get_report(conn, report_id)
        if room_id:
            text = summary(report, document, pdf_certificate_fingerprint(hub))
            bot_store.queue_message(conn, room_id, f"report-{report_id}-summary",
                                    {"msgtype": "m.notice", "body": text}, "notice", now)
            bot_store.queue_message(conn, room_id, f"report-{report_id}", {"report_id": report_id}, "report", now)
        return report


def summary(record: ReportRecord, document: bytes, pdf_certificate: str) -> str:
    report = json.loads(document)["report"]
    bridging = sum(len(q["bridging"]) for q in report["questions"])
    divisive = sum(len(q["divisive"]) for q in report["questions"])
    correction = f" It corrects version {report['replaces']['version']}." if report["replaces"] else ""
    # A title and a line's name neutralised and isolated: they cannot reorder or pass for the figures.
    return (f"Report on “{isolated(report['consultation']['title'])}” ({isolated(report['consultation']['line'])}, "
            f"consultation {report['consultation']['id']}), version "
            f"{record.version}: {bridging} bridging recommendation{'s' if bridging != 1 else ''} that a majority on every "
            f"side supports, {divisive} point{'s' if divisive != 1 else ''} where the sides differ.{correction} "
            f"The signed file follows (SHA-256 {sha256(document)}). Check it with: crossline verify FILE --fingerprint "
            f"\"{json.loads(document)['signed_by']['fingerprint']}\". Its PDF copies are signed by the hub's PDF "
            f"certificate, SHA-256 fingerprint {pdf_certificate}.")


@dataclass(frozen=True)
class DraftPage:
    consultation: Consultation
    line: Line
    versions: list[ReportRecord]
    draft: ReportRecord | None
    content: dict | None  # the draft as it would be released now
    rooms: list[Room]  # this line's negotiators' rooms, to deliver to
    fingerprint: str


def draft_page(hub: Hub, actor: Member | None, consultation_id: int) -> DraftPage:
    """A consultation's report versions and the draft being written: facilitators only, since a
    draft is not yet what the hub stands behind."""
    require(actor, "facilitator")
    with hub.engine.connect() as conn:
        consultation = get_consultation(conn, consultation_id)
        line = line_store.get_line(conn, consultation.line_id)
        versions = store.list_reports(conn, consultation_id)
    draft = versions[-1] if versions and not versions[-1].released else None
    return DraftPage(consultation, line, versions, draft, content(hub, draft.id) if draft else None,
                     negotiator_rooms(hub, line.id), hub_fingerprint(hub))


def read_release(hub: Hub, actor: Member | None, report_id: int) -> tuple[ReportRecord, bytes]:
    require_reader(actor)
    return released_document(hub, report_id)


def released_document(hub: Hub, report_id: int) -> tuple[ReportRecord, bytes]:
    """The signed bytes of a release (for the bot's delivery; pages use `read_release`)."""
    with hub.engine.connect() as conn:
        report = _report(conn, report_id)
        data = store.document(conn, report_id)
    if data is None:
        raise NotFound("This version is a draft: it has no signed file yet.")
    return report, data


def signed_copy(hub: Hub, release: bytes, kind: str, html: bytes = b"") -> bytes:
    """A copy of a release that carries the hub's signature (reports/copies.py): "pdf" or "markdown",
    or "html" as the web app rendered it."""
    return copies.sign_copy(kind, release, _signing_key(hub), html)


def releases(hub: Hub, actor: Member | None) -> list[store.ReleaseRow]:
    require_reader(actor)
    with hub.engine.connect() as conn:
        return store.released_reports(conn)


def history(engine: Engine, consultation_id: int) -> list[Known]:
    """A hub's releases of a consultation, oldest first (also for `crossline verify`, which has no Hub)."""
    with engine.connect() as conn:
        return [Known(*row) for row in store.releases_of(conn, consultation_id)]


def superseded_by(hub: Hub, record: ReportRecord) -> Known | None:
    """The latest release of the same consultation, when it is newer than `record`."""
    latest = max(history(hub.engine, record.consultation_id), key=lambda k: k.version, default=None)
    return latest if latest is not None and latest.version > record.version else None


def check_file(hub: Hub, actor: Member | None, data: bytes, detached_signature: bytes | None) -> Verdict:
    """The check page's verdict on an uploaded copy: this hub's key is the one trusted."""
    require_reader(actor)
    ours = hub_fingerprint(hub)
    return check(lambda: copies.verify_copy(data, detached_signature), {ours: "this hub's key"},
                 (ours, lambda consultation_id: history(hub.engine, consultation_id)))
