"""Names nobody may take (pure): what a member's display name, or the name and topic of a room she
makes, may not be, so that nobody can pass as staff, the hub's bot, a pseudonym or a hub room.

Shared by the Synapse module (membership events, room names and topics), the hub's gateway
(`PUT /profile/{user}/displayname`, checked before Synapse stores it; account ids at registration)
and the hub's join and pseudonym pages. Names are compared NFKC-normalised, case folded, accents
dropped, character by character through Unicode's TR39 confusables (the `confusable_homoglyphs`
package's data), so "NATALIA", "Ｎatalia", "Natália" and "Nata1ia" all read as "Natalia".
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

# Words that would make a name read as the hub speaking, or as someone with a role on it. Kept in
# one place: add the words of any language the hub serves. Reason: a member who calls herself
# "Moderator", "Crossline notices" or "Поддержка" is believed by the women she writes to.
RESERVED_WORDS: dict[str, str] = {
    # Staff roles (English, Romanian and Azerbaijani share most of them).
    "moderator": "a staff role", "facilitator": "a staff role", "administrator": "a staff role",
    "admin": "a staff role",
    "negotiator": "a staff role", "staff": "the hub's staff", "official": "the hub speaking",
    # The hub and its bot.
    "crossline": "the hub's name", "notices": "the hub's notices", "notice": "the hub's notices",
    "bot": "the hub's bot", "system": "the hub speaking", "support": "the hub's help",
    "help": "the hub's help", "helpdesk": "the hub's help", "security": "the hub speaking",
    # Russian.
    "модератор": "a staff role", "фасилитатор": "a staff role", "администратор": "a staff role",
    "админ": "a staff role", "переговорщик": "a staff role", "персонал": "the hub's staff",
    "уведомления": "the hub's notices", "бот": "the hub's bot", "поддержка": "the hub's help",
    "помощь": "the hub's help", "служба": "the hub speaking",
    # Romanian, Armenian, Georgian, Azerbaijani: help and notices.
    "ajutor": "the hub's help", "notificari": "the hub's notices", "asistenta": "the hub's help",
    "մոդերատոր": "a staff role", "ադմինիստրատոր": "a staff role", "օգնություն": "the hub's help",
    "მოდერატორი": "a staff role", "ადმინისტრატორი": "a staff role", "დახმარება": "the hub's help",
    "inzibatci": "a staff role", "destek": "the hub's help", "komek": "the hub's help",
}
# Short words that ordinary names contain (the "bot" in Botezatu): refused only as a whole word. The
# others are refused inside a word too ("Moderatorka", "CrosslineHelp").
_WHOLE_WORD_ONLY = frozenset({"bot", "бот", "help", "admin", "админ", "notice", "staff", "system"})

# Invisible or look-alike blanks that are letters or symbols by category (Hangul fillers, braille
# blank) or marks that join nothing visibly.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")
_VARIATION = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF), (0x180B, 0x180F))
# Longest text checked: Synapse's display-name limit, and a room topic's. Refused before any other
# check, which costs tens of microseconds a character (a megabyte would hold a server a minute).
MAX_LENGTH = 256
MAX_TOPIC_LENGTH = 1000


@dataclass(frozen=True)
class ProtectedName:
    """A name only `owner` may use: a staff member's, the bot's, a pseudonym's, a hub room's."""

    name: str
    owner: str  # a Matrix user id ("" for a hub room: only hub accounts may use it)
    kind: str  # said in the refusal: "a staff member", "a pseudonym", "one of the hub's rooms"...


@dataclass(frozen=True)
class Protected:
    """What the hub publishes to Synapse's module and the gateway: the names nobody else may take,
    and the hub's own accounts and staff, who may use reserved words and the hub's room names."""

    names: tuple[ProtectedName, ...] = ()
    hub_accounts: frozenset[str] = frozenset()

    def with_names(self, more: Iterable[ProtectedName]) -> Protected:
        return Protected((*self.names, *more), self.hub_accounts)


@lru_cache(maxsize=1)
def _prototypes() -> dict[str, frozenset[str]]:
    """For each character (case folded) with look-alikes, itself and the characters it directly looks
    like, in either case (TR39's pairs, single characters). Direct pairs only: the pairs' transitive
    closure chains r, t, u, y and z (or e, 3 and 7) into one class through rare scripts."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table: dict[str, set[str]] = {}
    for char, entries in data.items():
        looks = {_fold(entry["c"]) for entry in entries} | {_fold(char)}
        looks = {c for c in looks if len(c) == 1}
        for key in {_fold(char), char}:
            if len(key) == 1:
                table.setdefault(key, {key}).update(looks)
    return {key: frozenset(value) for key, value in table.items()}


def _fold(text: str) -> str:
    """NFKC, case folded, accents dropped: what a reader sees once size and marks are set aside."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(char for char in folded if not unicodedata.combining(char))


def _looks(char: str) -> frozenset[str]:
    return _prototypes().get(char) or frozenset(char)


def skeleton(text: str) -> str:
    """The name as a reader sees it (TR39's skeleton, over the package's table): folded, and each
    character replaced by the ASCII letter or digit it looks like, if any ("Nаtаliа" with Cyrillic а,
    "ＮＡＴＡＬＩＡ" and "Natália" all read "natalia"). A character that looks like two (Greek ν:
    n or v) gets one of them here; `confusable` compares with all of them."""
    def prototype(char: str) -> str:
        if char.isascii() and char.isalpha():
            return char
        ascii_like = [c for c in _looks(char) if c.isascii() and c.isalnum()]
        return min(ascii_like, key=lambda c: (not c.isalpha(), c)) if ascii_like else char
    return "".join(prototype(char) for char in _fold(text))


def _alike(a: str, b: str) -> bool:
    """One looks like the other, or both like the same ASCII letter or digit (Cyrillic а, Greek α).
    Never through a third, rarer character: that would chain c with o, or h with n."""
    if a == b or b in _looks(a) or a in _looks(b):
        return True
    return any(c.isascii() and c.isalnum() for c in _looks(a) & _looks(b))


def _same_glyphs(mine: str, theirs: str) -> bool:
    return len(mine) == len(theirs) and all(_alike(a, b) for a, b in zip(mine, theirs))


def confusable(a: str, b: str) -> bool:
    """`a` and `b` read alike, character by character, once folded (spaces and marks between words aside)."""
    return _same_glyphs("".join(_words(a)), "".join(_words(b)))


def _words(text: str) -> list[str]:
    """The folded text's words: runs of letters, digits and anything that looks like one (M0derator,
    Nata|ia), split at everything else."""
    words, word = [], ""
    for char in _fold(text):
        if not char.isspace() and (char.isalnum() or any(c.isascii() and c.isalnum() for c in _looks(char))):
            word += char
        elif word:
            words.append(word)
            word = ""
    return [*words, word] if word else words


def _contains_word(words: list[str], word: str, whole_only: bool) -> bool:
    for mine in words:
        if whole_only and _same_glyphs(mine, word):
            return True
        if not whole_only and any(_same_glyphs(mine[i:i + len(word)], word) for i in range(len(mine) - len(word) + 1)):
            return True
    return False


def _contains_run(words: list[str], run: list[str]) -> bool:
    return any(all(_same_glyphs(m, t) for m, t in zip(words[i:i + len(run)], run))
               for i in range(len(words) - len(run) + 1))


@lru_cache(maxsize=1)
def _reserved() -> tuple[tuple[str, str, bool, str], ...]:
    return tuple(("".join(_words(word)), word, word in _WHOLE_WORD_ONLY, reason) for word, reason in RESERVED_WORDS.items())


def _hidden_character(text: str) -> str | None:
    previous = ""
    for char in text:
        category = unicodedata.category(char)
        variation = any(low <= ord(char) <= high for low, high in _VARIATION)
        # A variation selector is allowed after a pictograph only (the emoji form of ☺, ❤).
        if variation and not (previous and unicodedata.category(previous) == "So"):
            return char
        if not variation and (category in ("Cf", "Cc", "Co", "Cn", "Cs", "Zl", "Zp") or char in _INVISIBLE):
            return char
        previous = char
    return None


def _script(char: str) -> str:
    try:
        return unicodedata.name(char).split(" ")[0]
    except ValueError:
        return "UNKNOWN"


def _mixed_scripts(text: str, whole: bool) -> bool:
    """A word in two scripts, or (`whole`: a person's name) Latin and Cyrillic letters in one name: no
    real name is written so, and it is the usual way to forge one ("Natalia" with a Cyrillic а). A
    room's name or topic may be bilingual, word by word."""
    scripts_by_word = [{_script(char) for char in word if char.isalpha()} for word in text.split()]
    everywhere = set().union(*scripts_by_word) if scripts_by_word else set()
    return any(len(scripts) > 1 for scripts in scripts_by_word) or (whole and {"LATIN", "CYRILLIC"} <= everywhere)


def check_name(name: str, setter: str, protected: Protected, what: str = "display name") -> str | None:
    """None if `setter` may use `name`, else a refusal saying what to change. `what` names what is
    being set in the refusal ("display name", "room name", "room topic")."""
    limit = MAX_TOPIC_LENGTH if what == "room topic" else MAX_LENGTH
    if len(name) > limit:
        return f"Your {what} is too long: it can have at most {limit} characters. Shorten it."
    hidden = _hidden_character(name)
    if hidden is not None:
        return (f"Your {what} contains an invisible or direction-changing character (U+{ord(hidden):04X}), which "
                f"can make it look like someone else's. Type it again with ordinary letters and spaces only.")
    owned = [entry for entry in protected.names if entry.owner == setter]
    if any(_fold(entry.name) == _fold(name) for entry in owned):
        return None  # her own name, as she has it: staff keep theirs, a pseudonym keeps its own
    if _mixed_scripts(unicodedata.normalize("NFKC", name), whole=what in ("display name", "pseudonym")):
        return (f"Your {what} mixes letters of two alphabets (for example Latin and Cyrillic), which is how "
                f"names are forged. Write it in one alphabet.")
    is_hub = setter in protected.hub_accounts
    words = _words(name)
    joined = "".join(words)
    for entry in protected.names:
        if entry.owner == setter or (is_hub and not entry.owner.startswith("@")):
            continue
        theirs = _words(entry.name)
        if not theirs:
            continue
        if _same_glyphs(joined, "".join(theirs)) or (len(theirs) > 1 and _contains_run(words, theirs)):
            return (f"Your {what} is, or looks like, the name of {entry.kind} on this hub, so others could "
                    f"mistake you for them. Choose {_a(what)} of your own.")
    if not is_hub:
        for reserved, shown, whole_only, reason in _reserved():
            if _contains_word(words, reserved, whole_only):
                return (f"Your {what} cannot contain the word '{shown}': it is reserved for {reason}, so "
                        f"that nobody can pass as the hub or its staff. Choose {_a(what)} without it.")
    return None


def _a(what: str) -> str:
    return ("an " if what[0] in "aeiou" else "a ") + what


def check_account_name(localpart: str, protected: Protected) -> str | None:
    """An account id (@name:hub) is what members are told to check: it may not read as a staff
    member's, the bot's or a pseudonym's name, nor hold a reserved word ("natalia.cojocaru",
    "crossline-help")."""
    people = Protected(tuple(entry for entry in protected.names if entry.owner), frozenset())
    words = re.sub(r"[._=/+-]+", " ", localpart).split()
    # A number after a word is a suffix ("natalia.cojocaru2"); inside one it may stand for a letter.
    return check_name(" ".join(re.sub(r"(?<=[^\d])\d+$", "", word) or word for word in words), "", people,
                      "account name")


def check_names(texts: Collection[str], setter: str, protected: Protected, what: str) -> str | None:
    return next((refusal for text in texts if (refusal := check_name(text, setter, protected, what))), None)


def load_protected(data: object) -> tuple[Protected, tuple[str, ...]]:
    """The published file's JSON (`protected_names_document`), read fail-safe (a malformed entry is
    skipped): the names and hub accounts, and the staff accounts whose display names the reader adds."""
    if not isinstance(data, dict):
        return Protected(), ()
    entries = data.get("names") if isinstance(data.get("names"), list) else []
    names = tuple(ProtectedName(e["name"], str(e.get("owner", "")), str(e.get("kind", "someone")))
                  for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str))
    accounts = data.get("hub_accounts") if isinstance(data.get("hub_accounts"), list) else []
    staff = data.get("staff") if isinstance(data.get("staff"), list) else []
    return Protected(names, frozenset(str(a) for a in accounts)), tuple(str(s) for s in staff)


def staff_names(display_names: Iterable[tuple[str, str | None]]) -> list[ProtectedName]:
    """Staff members' (and the bot's) current display names, each hers alone."""
    return [ProtectedName(name, user_id, "a staff member or the hub's bot") for user_id, name in display_names if name]


def protected_names_document(names: Iterable[ProtectedName], hub_accounts: Iterable[str],
                             staff: Iterable[str]) -> dict:
    """What the hub writes: `staff` are the accounts whose current display names are protected
    (looked up by the reader when it checks, since staff rename themselves in their clients)."""
    return {
        "names": [{"name": n.name, "owner": n.owner, "kind": n.kind} for n in names],
        "hub_accounts": sorted(set(hub_accounts)),
        "staff": sorted(set(staff)),
    }
