"""The audit log's hash chain, its keyed entries and its check (pure).

Each entry's hash covers the previous entry's hash and the entry's canonical JSON, so changing,
removing or reordering a stored entry breaks the chain from that entry on. A chain alone holds
only against someone who cannot recompute it: whoever can write the database can rewrite an entry
and every hash after it. Two things are kept where the database's holder cannot reach them:
- each entry's MAC, keyed with a key derived from the hub's report signing secret (a file in
  `secrets/`, never in the database): a rewritten entry's recomputed hash carries no valid MAC;
- signed heads (domain/audit_heads.py): the last entry's number and hash, signed with the hub's
  Ed25519 key and posted to the moderators' encrypted rooms, so copies live on their devices.
  Entries removed from the end, which no chain or MAC can show, show against a head.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from canonicaljson import encode_canonical_json

from crossline.errors import CrosslineError

GENESIS = "0" * 64
_KEY_LABEL = b"crossline audit log entries\0"


class StoredEntry(NamedTuple):
    seq: int
    entry: dict
    previous_hash: str
    hash: str
    mac: str | None  # None: written before entries were keyed
    unexpected: tuple[str, ...] = ()  # fields holding what the hub never writes (read as text)


class NotRecorded(CrosslineError):
    """The database did not store an entry as written: the action it records is not taken."""

    status = 503

    def __init__(self, seq: int):
        super().__init__(f"The moderation record did not store entry {seq} as it was written (something in the "
                         "database drops or changes entries), so nothing was done. Tell the hub's operator: "
                         "`crossline audit verify` names what the database holds that the hub never made.")


def entry_hash(previous: str, entry: dict) -> str:
    # UTF-8, not ASCII: a hand-written row's non-ASCII hash must read as a wrong one, not stop the check.
    return hashlib.sha256(previous.encode("utf-8") + encode_canonical_json(entry)).hexdigest()


def _matches(previous: str, entry: dict, stored_hash: str) -> bool:
    try:
        return entry_hash(previous, entry) == stored_hash
    except (ValueError, TypeError):  # details no canonical JSON holds (NaN): not what the hub wrote
        return False


def audit_key(report_signing_secret: str) -> bytes:
    """The entries' MAC key, derived from the hub's signing secret (so a copy of the database alone
    can neither check nor forge it)."""
    return hashlib.sha256(_KEY_LABEL + report_signing_secret.encode("utf-8")).digest()


def entry_mac(key: bytes, seq: int, digest: str) -> str:
    """The hash already binds the entry's content and everything before it."""
    return hmac.new(key, f"{seq}:{digest}".encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class KnownHead:
    """A head whose signature was already checked (audit_heads.read), with a label for messages,
    such as "the head signed 2026-11-28 16:50 UTC"."""

    seq: int
    hash: str
    label: str


@dataclass(frozen=True)
class Verdict:
    entries: int
    last_seq: int
    problems: list[str]  # the first names the earliest broken entry; empty: the log verifies
    notes: list[str]  # what was and was not checked
    head_seq: int | None  # the latest head the log was checked against
    authenticated: bool = False  # every entry carries a MAC, checked with the hub's key

    @property
    def verifies(self) -> bool:
        return not self.problems


def _span(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first} to {last}"


def _spans(numbers: list[int]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for n in numbers:
        if spans and spans[-1][1] == n - 1:
            spans[-1] = (spans[-1][0], n)
        else:
            spans.append((n, n))
    return spans


def check(entries: Sequence[StoredEntry], key: bytes | None, heads: Sequence[KnownHead],
          after: KnownHead | None = None, all_keyed: bool = False) -> Verdict:
    """Everything wrong with the stored log, earliest first, checked against the chain, the key (if
    given: only the hub's secrets hold it) and every head given. Each problem names what to look at.
    after: check only the entries after this one, already known to be right.
    all_keyed: every entry carries a MAC (the hub keyed those written before 0014, outside the
    database's say): one without has lost it."""
    problems: list[tuple[int, str]] = []
    notes: list[str] = []
    previous, expected = (after.hash, after.seq + 1) if after else (GENESIS, 1)
    unkeyed, bad_mac, legacy_until = [], [], 0
    # Every head was signed by a hub that keys each entry it writes: an entry after a head without
    # a MAC lost it (stripped to pass a rewritten entry off as one written before keys).
    seen_keyed, keyed_after = all_keyed, min((h.seq for h in heads), default=None)
    by_seq: dict[int, str] = {}
    numbered = {stored.hash: stored.seq for stored in entries}  # to name where a moved entry was
    for stored in entries:
        seq = stored.seq
        if stored.unexpected:
            problems.append((seq, f"entry {seq} holds what the hub never writes (its {', '.join(stored.unexpected)}"
                                  f"): it was written or changed outside the hub"))
        if seq < 1:
            problems.append((seq, f"entry {seq} cannot be: entries are numbered from 1 (a number was changed)"))
        elif seq < expected:
            problems.append((seq, f"entry {seq} is out of order (it comes after entry {expected - 1})"))
        elif seq > expected:
            missing, verb = _span(expected, seq - 1), "is" if seq - 1 == expected else "are"
            problems.append((expected, f"{missing} {verb} missing at the start (the log begins at entry {seq})"
                             if expected == 1 else
                             f"{missing} {verb} missing (the log goes from entry {expected - 1} to entry {seq})"))
        elif stored.previous_hash != previous:
            after_it = numbered.get(stored.previous_hash)
            problems.append((seq, f"entry {seq} is out of place: it was written after the entry now numbered "
                                  f"{after_it} (entries were reordered)" if after_it not in (None, seq) else
                                  f"entry {seq} does not follow the entry before it (entries were removed or "
                                  "replaced)"))
        if not _matches(stored.previous_hash, stored.entry, stored.hash):
            problems.append((seq, f"entry {seq} was changed after it was written (its content no longer "
                                  "matches its hash)"))
        if stored.mac is None:
            if seen_keyed or (keyed_after is not None and seq > keyed_after):
                unkeyed.append(seq)
            else:
                legacy_until = seq
        else:
            seen_keyed = True
            if key is not None and not hmac.compare_digest(str(stored.mac).encode("utf-8"),
                                                           entry_mac(key, seq, str(stored.hash)).encode("ascii")):
                bad_mac.append(seq)
        by_seq[seq] = stored.hash
        previous, expected = stored.hash, max(expected, seq + 1)
    for first, last in _spans(bad_mac):
        problems.append((first, f"{_span(first, last)} {'is' if first == last else 'are'} not authenticated by "
                                "the hub's key: written or rewritten outside the hub (hashes recomputed)"))
    for first, last in _spans(unkeyed):
        its, it = ("its", "it") if first == last else ("their", "they")
        problems.append((first, f"{_span(first, last)} lost {its} authentication (every entry after the first "
                                "keyed one, or after a signed head, carries one, and every entry once the hub keyed "
                                f"its older ones): {it} may have been rewritten outside the hub"))
    last_seq = entries[-1].seq if entries else expected - 1
    latest = max(heads, key=lambda h: h.seq, default=None)
    # The entries heads vouch for, as stored: a head that does not match names the span after the last of them.
    vouched = [h.seq for h in heads if by_seq.get(h.seq) == h.hash] + ([after.seq] if after else [])
    for head in sorted(heads, key=lambda h: h.seq):
        matched = max((seq for seq in vouched if seq < head.seq), default=0)
        if head.seq > last_seq:
            ending = f"the log ends at entry {last_seq}" if entries else "the log holds no entries"
            problems.append((last_seq + 1, f"{_span(last_seq + 1, head.seq)} {'is' if last_seq + 1 == head.seq else 'are'}"
                                           f" missing at the end: {head.label} names entry {head.seq}, and {ending}"))
        elif head.seq in by_seq and by_seq[head.seq] != head.hash:
            # Which entries since the last head that matches were replaced, no stored hash can tell.
            span = _span(matched + 1, head.seq)
            problems.append((matched + 1, f"{span} may {'each ' if matched + 1 < head.seq else ''}have been removed,"
                                          f" replaced or rewritten: entry {head.seq} is not the one in {head.label}"
                                          + (f" (entry {matched} is the last a head vouches for)" if matched else "")))
    if legacy_until:
        notes.append(f"{_span(1, legacy_until)} carr{'ies' if legacy_until == 1 else 'y'} no MAC: written before "
                     "entries were keyed, they are not authenticated by the hub's key; only the chain and signed "
                     "heads cover them.")
    if key is None:
        notes.append("The hub's key was not available: entries' authentication was not checked.")
    if latest is None:
        notes.append("No signed head was given or found: entries removed from the end cannot be detected. "
                     "Give the latest head from the moderators' room with --head FILE.")
    elif latest.seq < last_seq:
        keyed = key is not None and legacy_until <= latest.seq
        notes.append(f"{_span(latest.seq + 1, last_seq)} came after {latest.label}"
                     + ("; each is authenticated by the hub's key." if keyed else "."))
    problems.sort(key=lambda p: p[0])
    return Verdict(len(entries), last_seq, list(dict.fromkeys(p for _, p in problems)), notes,
                   latest.seq if latest else None, key is not None and not legacy_until)
