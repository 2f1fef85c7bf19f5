"""Copies of a released report that negotiators read (PDF, HTML, Markdown), each checkable on its own.

- PDF: a standard PAdES signature by the hub's PDF key, with the signed JSON embedded
  (`pdf_signature`); PDF readers and `pdfsig` check it too.
- HTML and Markdown: the hub's Ed25519 key signs the copy's exact bytes; the signature and the
  signed JSON it was made from follow the copy in one comment block (invisible when rendered):

      <!-- crossline-signature/1
      kind: markdown
      fingerprint: 9481 BC74 …
      sha256: <SHA-256 of the signed JSON>
      signature: <base64 Ed25519 signature of COPY_CONTEXT, kind, sha256 and the bytes before the block>
      release: <base64 of the signed JSON>
      -->

  The block must be exactly what the hub writes (it is rebuilt and compared), so one byte changed
  anywhere in the file fails, and a block moved onto another copy's text fails too.

`verify_copy` checks a copy's own signature and returns what the signed JSON says; which key to
trust is the caller's decision (it returns the Ed25519 key's fingerprint to compare).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import replace
from datetime import UTC, datetime

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from crossline.reports import pdf_signature
from crossline.reports.render import to_markdown, to_pdf
from crossline.reports.signing import ReportVerificationError, VerifiedReport, fingerprint, same_fingerprint, verify_report

KINDS = ("json", "pdf", "html", "markdown")
COPY_CONTEXT = b"crossline report copy/1\n"
_MARKER = b"<!-- crossline-signature/1\n"
_BLOCK = re.compile(rb"<!-- crossline-signature/1\nkind: (html|markdown)\nfingerprint: ([0-9A-F ]{1,100})\n"
                    rb"sha256: ([0-9a-f]{64})\nsignature: ([A-Za-z0-9+/=]{1,200})\nrelease: ([A-Za-z0-9+/=]+)\n-->\n")


def detect_kind(data: bytes) -> str:
    """What kind of copy these bytes are: "json", "pdf", "html" or "markdown"."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    head = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:64]  # a BOM or spaces: still JSON, refused with why
    if head.startswith(b"{"):
        return "json"
    if head.lower().startswith(b"<!doctype html"):
        return "html"
    if head.startswith(b"# ") or _MARKER in data:
        return "markdown"
    raise ReportVerificationError("not a report: neither the signed JSON nor a PDF, HTML or Markdown copy of one")


def verify_copy(data: bytes, detached_signature: bytes | None = None) -> VerifiedReport:
    """Check a copy's own signature; return the signed JSON it was made from (report, the Ed25519
    key's fingerprint, the JSON's SHA-256). `detached_signature` is an HTML or Markdown copy's
    signature block kept in a separate file."""
    kind = detect_kind(data)
    if detached_signature is not None:
        if kind in ("json", "pdf"):
            raise ReportVerificationError(f"a {kind.upper()} report carries its own signature: "
                                          "no separate signature file is needed")
        data += detached_signature
    if kind == "json":
        return verify_report(data)
    if kind == "pdf":
        release, spki, endorsement, certificate = pdf_signature.verified_release(data)
        verified = _embedded(release, "PDF")
        pdf_signature.check_endorsement(_report_key(release), spki, endorsement)
        return replace(verified, pdf_certificate=certificate)
    return _verify_text(data, kind)


def sign_copy(kind: str, release: bytes, key: SigningKey, html: bytes = b"") -> bytes:
    """A signed copy of a release: "pdf" or "markdown" (rendered here) or "html" (rendered by the web
    app from its template and given as `html`)."""
    verified = verify_report(release)
    if not same_fingerprint(verified.fingerprint, fingerprint(bytes(key.verify_key))):  # only what this key signed
        raise ValueError("this release was not signed by the key asked to sign its copy")
    if kind == "pdf":
        released_at = datetime.strptime(verified.report["released_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return pdf_signature.sign_pdf(to_pdf(verified.report, verified.fingerprint, verified.sha256), release, key,
                                      released_at)
    if kind == "markdown":
        return _sign_text(to_markdown(verified.report, verified.fingerprint, verified.sha256).encode("utf-8"),
                          kind, release, verified, key)
    if kind == "html":
        return _sign_text(html, kind, release, verified, key)
    raise ValueError(f"no signed copy of kind {kind!r}")


def _message(kind: str, digest: str, body: bytes) -> bytes:
    return COPY_CONTEXT + kind.encode() + b"\n" + digest.encode() + b"\n" + body


def _block(kind: str, verified: VerifiedReport, signature: bytes, release: bytes) -> bytes:
    return _MARKER + (f"kind: {kind}\nfingerprint: {verified.fingerprint}\nsha256: {verified.sha256}\n"
                      f"signature: {base64.b64encode(signature).decode()}\n"
                      f"release: {base64.b64encode(release).decode()}\n-->\n").encode("ascii")


def _sign_text(body: bytes, kind: str, release: bytes, verified: VerifiedReport, key: SigningKey) -> bytes:
    if not body.endswith(b"\n"):
        body += b"\n"
    signature = key.sign(_message(kind, verified.sha256, body)).signature
    return body + _block(kind, verified, signature, release)


def _verify_text(data: bytes, kind: str) -> VerifiedReport:
    at = data.rfind(_MARKER)
    if at < 0:
        raise ReportVerificationError(f"this {kind} copy carries no signature: its signature block "
                                      "(<!-- crossline-signature/1 …) is missing or was cut off")
    body, block = data[:at], data[at:]
    found = _BLOCK.fullmatch(block)
    if found is None:
        raise ReportVerificationError("the signature block at the end of the copy was changed or something "
                                      "was added after it")
    written_kind, _, _, signature_b64, release_b64 = (part.decode("ascii") for part in found.groups())
    if written_kind != kind:
        raise ReportVerificationError(f"the signature block is for a {written_kind} copy, not this {kind} copy")
    release = _b64(release_b64)
    verified = _embedded(release, kind)
    if block != _block(kind, verified, _b64(signature_b64), release):
        raise ReportVerificationError("the signature block was changed: its fingerprint or SHA-256 is not "
                                      "the signed report's, or it is not written as the hub writes it")
    try:
        _report_key(release).verify(_message(kind, verified.sha256, body), _b64(signature_b64))
    except (BadSignatureError, ValueError):
        raise ReportVerificationError(f"the {kind} copy was changed after it was signed, or its text belongs "
                                      "to another report: its signature does not match") from None
    return verified


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ReportVerificationError("the signature block is malformed (bad base64)") from None


def _embedded(release: bytes, where: str) -> VerifiedReport:
    try:
        return verify_report(release)
    except ReportVerificationError as error:
        raise ReportVerificationError(f"the signed report inside this {where} copy is not valid: {error}") from None


def _report_key(release: bytes) -> VerifyKey:
    """The Ed25519 public key of a release that `verify_report` accepted."""
    return VerifyKey(base64.b64decode(json.loads(release)["signed_by"]["public_key"]))
