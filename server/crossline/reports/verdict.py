"""What `crossline verify` and the hub's check page tell a reader about a file (pure).

A file is "Valid" only when three things hold: its signature checks (copies.verify_copy), the key
that made it is one the reader trusts (this hub's, or the fingerprint she gave), and it is a report
this version can read. An intact file signed by any other key is never valid: the reader is told
its fingerprint and to compare it with the one her hub publishes. A valid verdict names the hub,
line, consultation (title and id, so two rounds with the same title differ), version and release
date, and whether a newer version replaced it when the hub's records are at hand. Every piece of
text taken from the file is neutralised first, so a title cannot reorder or fake the verdict's lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from crossline.reports.neutral import neutral
from crossline.reports.signing import ReportVerificationError, VerifiedReport, same_fingerprint


@dataclass(frozen=True)
class Release:
    """What a valid file says about itself, ready to show."""
    hub: str | None  # "server name (hub URL)"; None in releases made before reports named their hub
    line: str
    title: str
    consultation_id: int
    closed_on: str
    version: int
    released_on: str
    fingerprint: str
    sha256: str


@dataclass(frozen=True)
class Known:
    """One release in this hub's records: (version, released at ms, SHA-256, report id)."""
    version: int
    released_at_ms: int
    sha256: str
    report_id: int


@dataclass(frozen=True)
class Verdict:
    valid: bool
    lines: tuple[str, ...]
    release: Release | None = None
    newer: Known | None = None  # the latest version, when it replaced this one


def day(iso_or_ms: str | int) -> str:
    """A release time as readers see it: 2026-09-21 14:15 UTC."""
    if isinstance(iso_or_ms, int):
        moment = datetime.fromtimestamp(iso_or_ms / 1000, tz=UTC)
    else:
        moment = datetime.strptime(iso_or_ms, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _field(container: object, key: str, kind: type):
    value = container.get(key) if isinstance(container, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and not 0 < value < 2**63):
        raise ReportVerificationError(f"the file is signed, but it is not a report this version can read "
                                      f"({key} is missing or of the wrong kind)")
    return value


def describe(verified: VerifiedReport) -> Release:
    report = verified.report
    consultation = _field(report, "consultation", dict)
    hub = report.get("hub")
    try:
        hub_text = f"{neutral(_field(hub, 'server_name', str))} ({neutral(_field(hub, 'url', str))})" if hub else None
        return Release(
            hub=hub_text, line=neutral(_field(consultation, "line", str)),
            title=neutral(_field(consultation, "title", str)), consultation_id=_field(consultation, "id", int),
            closed_on=day(_field(consultation, "closed_at", str)), version=_field(report, "version", int),
            released_on=day(_field(report, "released_at", str)), fingerprint=verified.fingerprint,
            sha256=verified.sha256)
    except ValueError:  # a date that is not one
        raise ReportVerificationError("the file is signed, but its dates cannot be read") from None


Records = tuple[str, Callable[[int], Sequence[Known]]]


def check(verify: Callable[[], VerifiedReport], trusted: Mapping[str, str], records: Records | None,
          no_key: str = "no hub data directory and no --fingerprint") -> Verdict:
    """`verify` checks the file's own signature; `trusted` maps each fingerprint the reader trusts
    to whose it is; `records` is a hub's key fingerprint and the lookup of its releases of a
    consultation (by id), if at hand: used only for a file signed by that hub's key (a lookup that
    cannot read them raises LookupError). `no_key` says why nothing is trusted, when nothing is."""
    try:
        verified = verify()
        release = describe(verified)
    except ReportVerificationError as error:
        return Verdict(False, (f"NOT VALID: {neutral(error)}.",))
    except Exception as error:  # noqa: BLE001 - untrusted bytes reach PDF and JSON parsers whose errors on
        # malformed input are of many kinds; the reader is owed a verdict, never a traceback.
        return Verdict(False, (f"NOT VALID: the file cannot be read as a report ({type(error).__name__}).",))
    whose = next((name for fp, name in trusted.items() if same_fingerprint(fp, verified.fingerprint)), None)
    if whose is None:
        return Verdict(False, (
            "NOT VALID: the file is intact, but it was signed by a key this check does not know.",
            f"That key's fingerprint: {verified.fingerprint}",
            "Compare it with the fingerprint your hub publishes (on its Reports page, or given to you in person). "
            "Only if they are the same, check again naming it: crossline verify FILE --fingerprint \"…\"."
            + ("" if trusted else f" (There was no hub key to compare with here: {no_key}.)"),
        ))
    lines = [f"Valid: signed by {whose} (fingerprint {verified.fingerprint}).",
             f"Hub: {release.hub or 'not named in this release (released before reports named their hub)'}",
             f"Line: {release.line}",
             f"Consultation: {release.title} (consultation {release.consultation_id}, closed {release.closed_on})",
             f"Version: {release.version}, released {release.released_on}",
             f"SHA-256 of the signed report: {release.sha256}"]
    if verified.pdf_certificate:
        lines.append(f"The PDF is signed by the hub's PDF certificate, SHA-256 fingerprint {verified.pdf_certificate} "
                     "(PDF readers show it in the signature's certificate details).")
    newer = None
    history = records[1] if records and same_fingerprint(records[0], verified.fingerprint) else None
    try:
        known = None if history is None else list(history(release.consultation_id))
    except LookupError:
        known = None
        lines.append("The hub's records could not be read here (its database did not answer).")
    if known is None:
        lines.append("Whether a newer version replaced it: not known here (this check cannot see the hub's "
                     "records). The hub's Reports page lists every version.")
    else:
        latest = max(known, key=lambda k: k.version, default=None)
        if not any(k.sha256 == release.sha256 for k in known):
            lines.append("WARNING: this hub's records hold no release with this SHA-256, although its key signed "
                         "it. Tell the hub's operators.")
        if latest is not None and latest.version > release.version:
            newer = latest
            lines.append(f"SUPERSEDED: version {latest.version}, released {day(latest.released_at_ms)}, "
                         "replaces this one. Read that version instead.")
        else:
            lines.append("Current: no newer version of this report has been released.")
    return Verdict(True, tuple(lines), release, newer)
