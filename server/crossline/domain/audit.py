"""The audit log's hash chain (pure). Each entry's hash covers the previous entry's hash and the
entry's canonical JSON, so changing, removing or reordering any stored entry breaks the chain
from that entry on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from canonicaljson import encode_canonical_json

GENESIS = "0" * 64


def entry_hash(previous: str, entry: dict) -> str:
    return hashlib.sha256(previous.encode("ascii") + encode_canonical_json(entry)).hexdigest()


def first_broken(entries: Iterable[tuple[int, dict, str, str]]) -> tuple[int, str] | None:
    """entries: (sequence number, entry, stored previous hash, stored hash), in order. Returns the
    first entry that does not verify, with why, or None."""
    previous, expected_seq = GENESIS, 1
    for seq, entry, stored_previous, stored_hash in entries:
        if seq != expected_seq:
            return seq, f"entry {expected_seq} is missing (found {seq} next)"
        if stored_previous != previous:
            return seq, "it does not follow the entry before it"
        if entry_hash(previous, entry) != stored_hash:
            return seq, "its content was changed after it was written"
        previous, expected_seq = stored_hash, seq + 1
    return None
