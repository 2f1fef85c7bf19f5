"""Signed heads of the audit log (pure): the last entry's number and hash, signed with the hub's
Ed25519 report key, as one line of text that survives being pasted from a chat message.

    crossline-audit-head.v1.<base64url of the head's canonical JSON>.<base64url of the signature>

The head names the hub, the entry and when it was signed, and carries the public key, so anyone
can check the signature; whether that key is this hub's is checked against its fingerprint (the
one printed on its reports), never taken from the head itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from canonicaljson import encode_canonical_json
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from crossline.domain.audit import KnownHead

PREFIX = "crossline-audit-head.v1."
# Every head in a text is read (the newest may come last); what is wrong is told for the first few.
MAX_TOLD = 20
_TOKEN = re.compile(re.escape(PREFIX) + r"([A-Za-z0-9_-]{1,2000})\.([A-Za-z0-9_-]{86})(?![A-Za-z0-9_-])")
_LATEST_MS = 253_402_300_799_999  # the end of year 9999: a time a head can name and print
AGAIN = "copy it again, whole, from the moderators' room"


class HeadError(Exception):
    pass


@dataclass(frozen=True)
class Head:
    hub: str
    seq: int
    hash: str
    at_ms: int


@dataclass(frozen=True)
class SignedHead:
    head: Head
    public_key: bytes
    token: str

    def known(self) -> KnownHead:
        return KnownHead(self.head.seq, self.head.hash, f"the head signed {when(self.head.at_ms)}")


def when(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(head: Head, signing_key: SigningKey) -> SignedHead:
    public = bytes(signing_key.verify_key)
    body = _b64(encode_canonical_json({"hub": head.hub, "seq": head.seq, "hash": head.hash, "at": head.at_ms,
                                       "key": _b64(public)}))
    signature = signing_key.sign((PREFIX + body).encode("ascii")).signature
    return SignedHead(head, public, f"{PREFIX}{body}.{_b64(signature)}")


def _parse(body: str, signature: str) -> SignedHead:
    try:
        fields = json.loads(_unb64(body))
        public = _unb64(fields["key"])
        VerifyKey(public).verify((PREFIX + body).encode("ascii"), _unb64(signature))
    except BadSignatureError:
        raise HeadError(f"its signature does not match its content: it was changed after it was signed or "
                        f"copied with a mistake; {AGAIN}") from None
    except (ValueError, KeyError, TypeError, CryptoError, binascii.Error):
        raise HeadError(f"its content cannot be read as a head; {AGAIN}") from None
    hub, seq, digest, at = (fields.get(name) for name in ("hub", "seq", "hash", "at"))
    if not isinstance(hub, str) or not all(type(n) is int for n in (seq, at)) or not isinstance(digest, str):
        raise HeadError("it lacks the hub, entry number, hash or time a head holds (it was not made by a hub)")
    if seq < 1:
        raise HeadError(f"it names entry {seq}, and entries are numbered from 1 (it was not made by a hub)")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise HeadError("its entry hash is not 64 hexadecimal digits (it was not made by a hub)")
    if not 0 <= at <= _LATEST_MS:
        raise HeadError("the time it was signed cannot be (it was not made by a hub)")
    return SignedHead(Head(hub, seq, digest, at), public, f"{PREFIX}{body}.{signature}")


def read(text: str) -> tuple[list[SignedHead], list[str]]:
    """Every head in a text (a pasted message, a downloaded file, several at once): those whose
    signature holds, and what is wrong with the others. The callers bound the text's size (each
    head costs a signature check), never the number of heads: a cap would drop the newest."""
    good, bad = [], []
    for number, start in enumerate((found.start() for found in re.finditer(re.escape(PREFIX), text)), start=1):
        match = _TOKEN.match(text, start)
        if match is None:
            bad.append(f"head {number} is cut short or broken (a head is one unbroken line: "
                       f"'{PREFIX}', its content, a dot and an 86-character signature); {AGAIN}")
            continue
        try:
            good.append(_parse(match.group(1), match.group(2)))
        except HeadError as error:
            bad.append(f"head {number}: {error}")
    if len(bad) > MAX_TOLD:
        bad[MAX_TOLD:] = [f"{len(bad) - MAX_TOLD} more heads cannot be used either"]
    return good, bad


def message(signed: SignedHead, fingerprint: str, reason: str) -> str:
    """The moderators' room message: what it is, why now, how to use it, and the head itself."""
    return (f"Moderation record: signed head, entry {signed.head.seq}, {when(signed.head.at_ms)} ({reason}).\n"
            f"Signed with the hub's key {fingerprint}. Keep this message: `crossline audit verify --head FILE` "
            "(FILE holding this text) shows whether any entry up to this one was later changed or removed.\n"
            f"{signed.token}")
