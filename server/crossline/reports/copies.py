"""Copies of a released report that negotiators read (PDF, HTML, Markdown), each checkable on its own.

First version: the API that `crossline verify` and the hub's check page call; JSON passes through
to signing.verify_report. PDF, HTML and Markdown signatures follow.
"""

from __future__ import annotations

from crossline.reports.signing import ReportVerificationError, VerifiedReport, verify_report

KINDS = ("json", "pdf", "html", "markdown")


def detect_kind(data: bytes) -> str:
    """What kind of copy these bytes are: "json", "pdf", "html" or "markdown"."""
    head = data.lstrip()[:64]
    if head.startswith(b"{"):
        return "json"
    if data.startswith(b"%PDF-"):
        return "pdf"
    if head.lower().startswith(b"<!doctype html"):
        return "html"
    if head.startswith(b"# "):
        return "markdown"
    raise ReportVerificationError("not a report: neither the signed JSON nor a PDF, HTML or Markdown copy of one")


def verify_copy(data: bytes, detached_signature: bytes | None = None) -> VerifiedReport:
    """Check a copy's own signature; return the signed JSON it was made from (report, the Ed25519
    key's fingerprint, the JSON's SHA-256). Which key to trust is the caller's decision."""
    kind = detect_kind(data)
    if kind == "json":
        if detached_signature is not None:
            raise ReportVerificationError("the signed JSON carries its own signature: no separate signature file is needed")
        return verify_report(data)
    raise ReportVerificationError(f"checking {kind} copies is not available yet")
