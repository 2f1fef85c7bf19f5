"""Pseudonym rules (pure): acceptable display names, and the keyed tag that allows one pseudonym
per person per consultation without storing who the person is."""

from __future__ import annotations

import difflib
import hashlib
import hmac
import re
import unicodedata

from crossline.errors import InvalidInput

MIN_NAME, MAX_NAME = 3, 40
# Digits and signs people use to imitate letters.
_LOOKALIKES = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "|": "l"})
TOO_CLOSE = 0.85


def skeleton(name: str) -> str:
    """A name reduced to what a reader sees: compatibility forms folded, case and accents dropped,
    lookalike digits turned into letters, spaces and punctuation removed."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", name).casefold())
    letters = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "", letters.translate(_LOOKALIKES))


def check_display_name(name: str, names_in_use: list[str]) -> str:
    name = " ".join(name.split())
    if not MIN_NAME <= len(name) <= MAX_NAME:
        raise InvalidInput(f"A pseudonym has {MIN_NAME} to {MAX_NAME} characters.")
    if "@" in name or ":" in name:
        raise InvalidInput("A pseudonym cannot contain @ or : (it would look like an account id).")
    mine = skeleton(name)
    if len(mine) < MIN_NAME:
        raise InvalidInput("Choose a pseudonym with a few letters in it.")
    for other in names_in_use:
        theirs = skeleton(other)
        if theirs and (mine == theirs or difflib.SequenceMatcher(None, mine, theirs).ratio() >= TOO_CLOSE):
            raise InvalidInput("That pseudonym is too close to a name already used on this hub. Choose another, "
                               "so that nobody is mistaken for someone else.")
    return name


def person_tag(secret: bytes, member_id: int, consultation_id: int) -> str:
    return hmac.new(secret, f"{member_id}:{consultation_id}".encode(), hashlib.sha256).hexdigest()
