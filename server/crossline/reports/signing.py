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
from dataclasses import dataclass

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


def verify_report(data: bytes, expected_fingerprint: str | None = None) -> VerifiedReport:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportVerificationError(f"not a report file: it is not valid JSON ({error})") from None
    if not isinstance(document, dict) or set(document) != {"report", "signed_by", "signature"}:
        raise ReportVerificationError("not a report file: expected exactly report, signed_by and signature")
    signer = document["signed_by"]
    if not isinstance(signer, dict) or signer.get("algorithm") != ALGORITHM:
        raise ReportVerificationError(f"unknown signature algorithm: expected {ALGORITHM}")
    try:
        public = base64.b64decode(signer["public_key"], validate=True)
        signature = base64.b64decode(document["signature"], validate=True)
        key = VerifyKey(public)
    except Exception:  # noqa: BLE001 - any malformed key or signature is the same failure
        raise ReportVerificationError("the public key or the signature is malformed") from None
    if signer.get("fingerprint") != fingerprint(public):
        raise ReportVerificationError("the fingerprint written in the file does not match its public key")
    if encode_canonical_json(document) != data:
        raise ReportVerificationError("the file was changed: it is not the exact bytes that were signed")
    try:
        key.verify(encode_canonical_json({"report": document["report"], "signed_by": signer}), signature)
    except BadSignatureError:
        raise ReportVerificationError("the signature does not match the report: it was changed after signing") from None
    found = fingerprint(public)
    if expected_fingerprint is not None and _normal(expected_fingerprint) != _normal(found):
        raise ReportVerificationError(f"signed by another key ({found}), not the one you expected")
    return VerifiedReport(document["report"], found, sha256(data))


def _normal(value: str) -> str:
    return "".join(value.split()).upper()
