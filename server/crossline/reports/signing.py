"""Signed reports: canonical JSON signed with the hub's Ed25519 key, and their verification.

A released report file is the canonical JSON (sorted keys, no spaces, UTF-8) of
    {"report": {...}, "signed_by": {"algorithm": "ed25519", "public_key": B64, "fingerprint": HEX},
     "signature": B64}
where the signature covers the canonical JSON of {"report", "signed_by"}. The file must be exactly
that encoding: any changed byte fails, even one that leaves the JSON meaning the same.
The fingerprint (SHA-256 of the public key) is what readers compare with the one the hub
publishes; the file's own SHA-256 names one release.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from canonicaljson import encode_canonical_json
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

ALGORITHM = "ed25519"


class ReportVerificationError(Exception):
    pass


def signing_key_from_secret(secret: str) -> SigningKey:
    """The hub's signing key, from its secret file (random text): the seed is its SHA-256."""
    return SigningKey(hashlib.sha256(secret.encode("utf-8")).digest())


def fingerprint(public_key: bytes) -> str:
    digest = hashlib.sha256(public_key).hexdigest().upper()
    return " ".join(digest[i:i + 4] for i in range(0, len(digest), 4))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def signer_block(signing_key: SigningKey) -> dict:
    public = bytes(signing_key.verify_key)
    return {"algorithm": ALGORITHM, "public_key": _b64(public), "fingerprint": fingerprint(public)}


def sign_report(report: dict, signing_key: SigningKey) -> bytes:
    """The released file's bytes."""
    unsigned = {"report": report, "signed_by": signer_block(signing_key)}
    signature = signing_key.sign(encode_canonical_json(unsigned)).signature
    return encode_canonical_json({**unsigned, "signature": _b64(signature)})


@dataclass(frozen=True)
class VerifiedReport:
    report: dict
    fingerprint: str
    sha256: str
    # For a PDF copy: its signing certificate's SHA-256 fingerprint (what PDF readers show).
    pdf_certificate: str | None = field(default=None, compare=False)


MAX_DEPTH = 64  # a genuine report nests 7 deep


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ReportVerificationError("not a report file: a name appears twice in one object")
    return dict(pairs)


def _no_constant(name: str):
    raise ReportVerificationError(f"not a report file: it holds {name}, which JSON does not allow")


def _depth(data: bytes) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            escaped, in_string = (False, True) if escaped else (byte == 0x5C, byte != 0x22)
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _parse(data: bytes) -> dict:
    if not data:
        raise ReportVerificationError("the file is empty")
    if data.startswith(b"\xef\xbb\xbf"):
        raise ReportVerificationError("the file begins with a byte-order mark: it is not the file the hub signed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ReportVerificationError("not a report file: it is not UTF-8 text") from None
    if _depth(data) > MAX_DEPTH:
        raise ReportVerificationError(f"not a report file: it nests more than {MAX_DEPTH} levels deep")
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, or a number of thousands of digits
        raise ReportVerificationError(f"not a report file: it is not valid JSON ({str(error)[:200]})") from None
    if not isinstance(document, dict) or set(document) != {"report", "signed_by", "signature"}:
        raise ReportVerificationError("not a report file: expected exactly report, signed_by and signature")
    return document


def _canonical_b64(value: object, size: int, what: str) -> bytes:
    """The bytes `value` encodes, if it is exactly their standard base64 (padding and unused bits
    included): another spelling of the same bytes is another file, so it is refused."""
    try:
        decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except ValueError:
        decoded = None
    if decoded is None or len(decoded) != size or _b64(decoded) != value:
        raise ReportVerificationError(f"the {what} is malformed: it is not the standard base64 of {size} bytes")
    return decoded


def verify_report(data: bytes) -> VerifiedReport:
    """The report in `data` if it is exactly what a key signed (which key to trust is the caller's
    decision: reports/verdict.py). Any other file raises ReportVerificationError with a reason."""
    document = _parse(data)
    signer = document["signed_by"]
    if not isinstance(signer, dict) or set(signer) != {"algorithm", "public_key", "fingerprint"}:
        raise ReportVerificationError("not a report file: signed_by must hold algorithm, public_key and fingerprint")
    if signer["algorithm"] != ALGORITHM:
        raise ReportVerificationError(f"unknown signature algorithm: expected {ALGORITHM}")
    if not isinstance(document["report"], dict):
        raise ReportVerificationError("not a report file: its report is not an object")
    public = _canonical_b64(signer["public_key"], 32, "public key")
    signature = _canonical_b64(document["signature"], 64, "signature")
    found = fingerprint(public)
    if signer["fingerprint"] != found:
        raise ReportVerificationError("the fingerprint written in the file does not match its public key")
    try:
        canonical = encode_canonical_json(document)
        signed = encode_canonical_json({"report": document["report"], "signed_by": signer})
    except (ValueError, TypeError, RecursionError):  # a lone surrogate, NaN: nothing the hub signs
        raise ReportVerificationError("not a report file: it holds text or numbers the hub never signs") from None
    if canonical != data:
        raise ReportVerificationError("the file was changed: it is not the exact bytes that were signed")
    try:
        VerifyKey(public).verify(signed, signature)
    except (BadSignatureError, ValueError):
        raise ReportVerificationError("the signature does not match the report: it was changed after signing") from None
    return VerifiedReport(document["report"], found, sha256(data))


def same_fingerprint(a: str, b: str) -> bool:
    return _normal(a) == _normal(b)


def _normal(value: str) -> str:
    return "".join(value.split()).upper()
