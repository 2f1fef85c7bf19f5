"""The audit log read by people (pure): the filters a moderator or operator writes, checked with a
sentence that says what to write, and each entry as a line of words (who, what, on which case).

Used by `crossline audit list` and the moderators' page (/moderation/audit), so both read and
refuse the same filters the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from crossline.domain.moderation import ACTION_LABELS, CATEGORY_LABELS, Action, Category
from crossline.errors import InvalidInput

MAX_NUMBER = 2**63 - 1  # numbers are stored as signed 64-bit integers: anything larger names nothing
MAX_LIMIT = 1000

# Actors that are not a member, as written in the log, and as read.
ACTOR_WORDS = {
    "reporter": "the reporter",
    "reported_person": "the reported person",
    "matrix": "a Matrix report",
    "bot": "the hub's bot",
    "hub": "the hub",
    "quorum": "the unmasking quorum",
    "system": "the hub",
}

# Every kind of entry the hub writes (services/moderation.py, pseudonyms.py, pseudonym_pool.py;
# tests/test_cli_audit_list.py checks the sources for kinds missing here).
KIND_LABELS = {
    "report_received": "report received",
    "reporter_added": "the reporter added to her report",
    "report_added": "a further report added to the open case",
    "report_repeated": "the same report again (nothing added)",
    "report_not_added": "a further report not added (the case holds as many as it can)",
    "case_viewed": "case opened (reason, contact and evidence read)",
    "triaged": "triaged",
    "decided": "decided",
    "proposed": "proposed (waits for a second moderator)",
    "agreed": "agreed, as the second moderator",
    "action_done": "action carried out",
    "action_failed": "action failed",
    "appealed": "appealed by the person it concerns",
    "deleted_by_retention": "case deleted (its retention period ended)",
    "moderator_key_set": "escrow passphrase set",
    "escrow_set_up": "pseudonym escrow set up",
    "unmasking_requested": "unmasking requested",
    "unmasking_expired": "unmasking request expired",
    "unmasking_passphrase_refused": "unmasking approval refused (wrong passphrase)",
    "unmasking_approved": "unmasking approved",
    "unmasking_failed": "unmasking failed",
    "unmasked": "pseudonym unmasked",
    "pseudonyms_invited": "pseudonym accounts made ready",
}

_DETAIL_NAMES = {"actions": "actions", "action": "action", "on_appeal": "on appeal", "category": "kind",
                 "urgent": "urgent", "source": "from", "text": "with text", "images": "pictures (SHA-256)",
                 "request": "request", "threshold": "threshold", "holders": "holders", "approvals": "approvals",
                 "count": "accounts"}

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NUMBER = re.compile(r"[0-9]{1,19}")
# A Matrix user id as the spec allows (historical ids included): printable ASCII, one colon after the localpart.
_USER_ID = re.compile(r"@[\x21-\x39\x3b-\x7e]+:[A-Za-z0-9.\-\[\]:]+")
_MAX_USER_ID = 255


@dataclass(frozen=True)
class Who:
    """The actor filter: a member by number or Matrix id (resolved by the service), or a word."""

    member_id: int | None = None
    user_id: str | None = None
    word: str | None = None


@dataclass(frozen=True)
class Filters:
    case_id: int | None = None
    who: Who | None = None
    since_ms: int | None = None
    until_ms: int | None = None  # exclusive: the midnight after the day written
    limit: int = 100
    before_seq: int | None = None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _number(value: object, what: str) -> int | None:
    text = _text(value)
    if not text:
        return None
    if not _NUMBER.fullmatch(text) or not 1 <= int(text) <= MAX_NUMBER:
        raise InvalidInput(f"{what}: write a whole number from 1 to {MAX_NUMBER}, such as 12 (digits 0-9 only).")
    return int(text)


def _day_ms(value: object, what: str) -> int | None:
    text = _text(value)
    if not text:
        return None
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{what}: write a date as YYYY-MM-DD, such as 2026-11-28 (a day that exists, in UTC)."
                           ) from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _who(value: object) -> Who | None:
    text = _text(value)
    if not text:
        return None
    if _NUMBER.fullmatch(text):
        return Who(member_id=_number(text, "Moderator"))
    if len(text) <= _MAX_USER_ID and _USER_ID.fullmatch(text):
        return Who(user_id=text)
    word = text.lower().replace(" ", "_")
    if word in ACTOR_WORDS:
        return Who(word=word)
    raise InvalidInput("Moderator: write her Matrix id (@name:server), her member number, or one of: "
                       + ", ".join(ACTOR_WORDS) + ".")


def parse_filters(*, case: object = None, moderator: object = None, since: object = None, until: object = None,
                  limit: object = None, before: object = None, default_limit: int = 100) -> Filters:
    """The filters as written (text, or None for one not given); an empty one is no filter."""
    since_ms = _day_ms(since, "Since")
    until_day = _day_ms(until, "Until")
    until_ms = None if until_day is None else until_day + 86_400_000  # the whole day written
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise InvalidInput("Until is before since: write the earlier date as since, the later one as until.")
    chosen = _number(limit, "Limit")
    if chosen is not None and chosen > MAX_LIMIT:
        raise InvalidInput(f"Limit: at most {MAX_LIMIT} entries at a time (continue with the older ones).")
    return Filters(_number(case, "Case"), _who(moderator), since_ms, until_ms, chosen or default_limit,
                   _number(before, "Before entry"))


# -- Entries as words -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    seq: int
    at: str
    who: str
    what: str
    case_id: int | None
    details: str


def member_of(actor: str) -> int | None:
    prefix, _, number = actor.partition(":")
    if prefix == "member" and _NUMBER.fullmatch(number) and int(number) <= MAX_NUMBER:
        return int(number)
    return None


def _details(entry: dict) -> dict:
    """The hub writes an object; anything else was put there by hand (and `verify` says so)."""
    details = entry["details"]
    return details if isinstance(details, dict) else {"stored details": details}


def members_named(entry: dict) -> set[int]:
    """The member numbers an entry names (its actor, an escrow's holders), to be shown as people."""
    holders = _details(entry).get("holders")
    named = [member_of(entry["actor"]), *(holders if isinstance(holders, list) else [])]
    return {n for n in named if isinstance(n, int) and not isinstance(n, bool)}


def utc(at_ms: object) -> str:
    try:
        if type(at_ms) is not int:
            raise TypeError
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=at_ms)).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, TypeError):  # only a hand-edited row holds such a time
        return f"{at_ms} (not a time)"


def _person(number: int, names: dict[int, str]) -> str:
    return names.get(number, f"member {number}")


def _label(labels: dict, kind: type, value: object) -> str:
    try:
        return labels[kind(value)]
    except (ValueError, KeyError, TypeError):
        return str(value)


def _value(key: str, value: object, names: dict[int, str]) -> str:
    if key in ("actions", "action"):
        return ", ".join(_label(ACTION_LABELS, Action, a) for a in (value if isinstance(value, list) else [value]))
    if key == "category":
        return _label(CATEGORY_LABELS, Category, value)
    if key == "holders" and isinstance(value, list):
        return ", ".join(_person(h, names) if isinstance(h, int) else str(h) for h in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def describe(entry: dict, names: dict[int, str]) -> Row:
    """names: member number -> how she is shown (her Matrix id)."""
    actor = entry["actor"]
    number = member_of(actor)
    who = _person(number, names) if number is not None else ACTOR_WORDS.get(actor, actor)
    what = KIND_LABELS.get(entry["kind"], entry["kind"].replace("_", " "))
    details = "; ".join(f"{_DETAIL_NAMES.get(key, key.replace('_', ' '))}: {_value(key, value, names)}"
                        for key, value in sorted(_details(entry).items()))
    return Row(entry["seq"], utc(entry["at"]), who, what, entry["case_id"], details)
