"""Rules about lines, members and invitations, as pure functions that raise domain errors."""

from __future__ import annotations

import re
from collections.abc import Iterable

from crossline.domain.records import ROLES, Invitation
from crossline.errors import Gone, InvalidInput

MAX_NAME = 200
_LOCALPART = re.compile(r"^[a-z0-9._=/+-]{1,64}$")


def clean_name(value: str, what: str) -> str:
    value = " ".join((value or "").split())
    if not value:
        raise InvalidInput(f"{what} cannot be empty.")
    if len(value) > MAX_NAME:
        raise InvalidInput(f"{what} is too long ({len(value)} characters; at most {MAX_NAME}).")
    return value


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64]
    return slug or "line"


def parse_sides(text: str) -> list[str]:
    """Sides as typed on the form: one per line (or comma-separated). At least two, no repeats."""
    names = [clean_name(part, "A side's name") for part in re.split(r"[\n,]", text or "") if part.strip()]
    if len(names) < 2:
        raise InvalidInput("A line needs at least two sides, one per line (for example 'Left bank' and 'Right bank').")
    lowered = [name.casefold() for name in names]
    if len(set(lowered)) != len(lowered):
        raise InvalidInput("Each side of a line needs a different name.")
    return names


def parse_roles(values: Iterable[str]) -> frozenset[str]:
    roles = frozenset(value for value in values if value)
    unknown = roles - set(ROLES)
    if unknown:
        raise InvalidInput(f"Unknown role {', '.join(sorted(unknown))}. Roles are: {', '.join(ROLES)}.")
    return roles or frozenset({"participant"})


def check_localpart(localpart: str) -> str:
    localpart = (localpart or "").strip().lower()
    if not _LOCALPART.match(localpart):
        raise InvalidInput(
            "A user name may use lower-case letters, digits and . _ = - / + only, up to 64 characters."
        )
    return localpart


def check_password(password: str) -> str:
    if len(password or "") < 12:
        raise InvalidInput("Choose a password of at least 12 characters (a few words make a good one).")
    if len(password) > 1024:
        raise InvalidInput("That password is too long (at most 1024 characters).")
    return password


def check_invitation_usable(invitation: Invitation | None, now_ms: int) -> Invitation:
    if invitation is None:
        raise Gone("This invitation link is not valid. Check that you copied the whole link, or ask your facilitator for a new one.")
    if invitation.used_at is not None:
        raise Gone("This invitation has already been used. Each invitation works once; ask your facilitator for a new one.")
    if invitation.expires_at <= now_ms:
        raise Gone("This invitation has expired. Ask your facilitator for a new one.")
    return invitation
