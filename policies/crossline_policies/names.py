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
from itertools import accumulate
from importlib import resources

# Words that would make a name read as the hub speaking, or as someone with a role on it, kept in
# one place (add the words of any language the hub serves). Each is a stem, matched as the start of
# a word, so that it covers feminine and inflected forms ("modera": Moderator, Moderatoare,
# Moderatrice, Moderadora, Modérateur). The word shown in a refusal, and why it is reserved.
# ROLE stems claim who someone is: refused in every name and topic. A member who calls herself
# "Moderator" or "Crossline notices" is believed by the women she writes to.
ROLE_STEMS: dict[str, tuple[str, str]] = {
    "modera": ("moderator", "a staff role"), "facilit": ("facilitator", "a staff role"),
    "fasilit": ("facilitator", "a staff role"), "admin": ("admin", "a staff role"),
    "negotiato": ("negotiator", "a staff role"), "negociato": ("negotiator", "a staff role"),
    "negotiatri": ("negotiator", "a staff role"), "mediato": ("mediator", "a staff role"),
    "mediatri": ("mediator", "a staff role"), "coordinato": ("coordinator", "a staff role"),
    "coordonato": ("coordinator", "a staff role"), "coordinatri": ("coordinator", "a staff role"),
    "official": ("official", "the hub speaking"), "oficial": ("official", "the hub speaking"),
    "crossline": ("crossline", "the hub's name"),
    # Russian and Ukrainian.
    "модер": ("модератор", "a staff role"), "админ": ("админ", "a staff role"), "адмін": ("адмін", "a staff role"),
    "фасилит": ("фасилитатор", "a staff role"), "переговорщ": ("переговорщик", "a staff role"),
    "координатор": ("координатор", "a staff role"), "официал": ("официальный", "the hub speaking"),
    "персонал": ("персонал", "the hub's staff"),
    # Armenian, Georgian, Azerbaijani.
    "մոդերատոր": ("մոդերատոր", "a staff role"), "ադմինիստրատոր": ("ադմինիստրատոր", "a staff role"),
    "მოდერატორ": ("მოდერატორი", "a staff role"), "ადმინისტრატორ": ("ადმინისტრატორი", "a staff role"),
    "inzibatci": ("inzibatçı", "a staff role"),
}
# SERVICE stems name the hub's help and notices: refused in a person's name, and in a room's name
# only when it leads a name of one or two words ("Support", "Help desk", "Notices"), so that
# "Peer support", "Mothers' help" and a topic asking for help stay ordinary.
SERVICE_STEMS: dict[str, tuple[str, str]] = {
    "support": ("support", "the hub's help"), "helpdesk": ("helpdesk", "the hub's help"),
    "notice": ("notices", "the hub's notices"), "notific": ("notifications", "the hub's notices"),
    "security": ("security", "the hub speaking"), "system": ("system", "the hub speaking"),
    "sistem": ("system", "the hub speaking"), "систем": ("система", "the hub speaking"),
    "ajutor": ("ajutor", "the hub's help"), "asisten": ("asistență", "the hub's help"),
    "поддерж": ("поддержка", "the hub's help"), "помощ": ("помощь", "the hub's help"),
    "уведомл": ("уведомления", "the hub's notices"), "служб": ("служба", "the hub speaking"),
    "օգնություն": ("օգնություն", "the hub's help"), "დახმარება": ("დახმარება", "the hub's help"),
    "destek": ("destek", "the hub's help"), "komek": ("kömək", "the hub's help"),
}
# Short words that ordinary names contain or start with (the "bot" in Botezatu, "Helena"): refused
# only as a whole word. "help" is a service word: in a room, only leading a short name.
WHOLE_WORDS: dict[str, tuple[str, str]] = {
    "bot": ("bot", "the hub's bot"), "бот": ("бот", "the hub's bot"), "mod": ("mod", "a staff role"),
    "mods": ("mods", "a staff role"), "staff": ("staff", "the hub's staff"), "help": ("help", "the hub's help"),
}
_WHOLE_SERVICE = frozenset({"help"})
# A stem this long is also looked for across words and inside them ("Cross Line", "SuperModerator").
_LONG_STEM = 6

# Look-alikes the confusables data lacks (read by the check beside it): small capitals, which read as
# capitals, and signs that stand for letters.
SUPPLEMENT: dict[str, str] = {
    "\u1d00": "a", "\u0299": "b", "\u1d04": "c", "\u1d05": "d", "\u1d07": "e", "\ua730": "f", "\u0262": "g",
    "\u029c": "h", "\u026a": "i", "\u1d0a": "j", "\u1d0b": "k", "\u029f": "l", "\u1d0d": "m", "\u0274": "n",
    "\u1d0f": "o", "\u1d18": "p", "\ua7af": "q", "\u0280": "r", "\ua731": "s", "\u1d1b": "t", "\u1d1c": "u",
    "\u1d20": "v", "\u1d21": "w", "\u028f": "y", "\u1d22": "z", "@": "a", "$": "s",
}

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
    for char, letter in SUPPLEMENT.items():
        table.setdefault(char, {char}).add(letter)
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


@lru_cache(maxsize=1 << 16)
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


def _contains_run(words: list[str], theirs: list[str]) -> bool:
    """`theirs` as adjacent words of `words`, in any order ("Cojocaru, Natalia"); not words spread
    through a sentence ("The Crossline hub bot" holds no "Crossline bot")."""
    return any(_same_words(words[i:i + len(theirs)], theirs) for i in range(len(words) - len(theirs) + 1))


def _same_words(mine: list[str], theirs: list[str]) -> bool:
    left = list(mine)
    for word in theirs:
        found = next((i for i, candidate in enumerate(left) if _same_glyphs(candidate, word)), None)
        if found is None:
            return False
        left.pop(found)
    return True


def _spelled_out(words: list[str]) -> list[str]:
    """The words, with each run of three or more one-letter words read as one ("M o d e r a t o r")."""
    merged: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        merged.extend(["".join(run)] if len(run) >= 3 else run)
        run = []
        if word:
            merged.append(word)
    return merged


def _starts(word: str, stem: str) -> bool:
    return _same_glyphs(word[:len(stem)], stem)


def _inside(text: str, stem: str) -> bool:
    first = stem[0]
    return any(_alike(text[i], first) and _same_glyphs(text[i:i + len(stem)], stem)
               for i in range(len(text) - len(stem) + 1))


def _folded_table(table: dict[str, tuple[str, str]]) -> tuple[tuple[str, str, str], ...]:
    return tuple(("".join(_words(stem)), shown, reason) for stem, (shown, reason) in table.items())


@lru_cache(maxsize=1)
def _stems() -> tuple[tuple[tuple[str, str, str], ...], ...]:
    return _folded_table(ROLE_STEMS), _folded_table(SERVICE_STEMS), _folded_table(WHOLE_WORDS)


def _reserved_word(words: list[str], what: str) -> tuple[str, str] | None:
    """The reserved word `words` claim, as (the word shown, why it is reserved), or None.

    A person's name (display name, account, pseudonym): any stem starting a word, a long stem
    anywhere inside a word or across words, a whole word. A room's name or topic: a role stem
    starting a word or a run of words, a whole word; a service stem only leading a room name of one
    or two words. So "Unofficial notes" and "Peer support" stay room names, and no one is "Support"."""
    roles, services, whole = _stems()
    words = _spelled_out(words)
    joined = "".join(words)
    starts = [0, *accumulate(len(word) for word in words)][:-1]  # where each word begins in `joined`
    person = what not in ("room name", "room topic")
    for stem, shown, reason in roles + (services if person else ()):
        if any(_starts(word, stem) for word in words):
            return shown, reason
        if len(stem) >= _LONG_STEM and (_inside(joined, stem) if person else
                                        any(_starts(joined[start:], stem) for start in starts)):
            return shown, reason
    for stem, shown, reason in whole:
        if (person or stem not in _WHOLE_SERVICE) and any(_same_glyphs(word, stem) for word in words):
            return shown, reason
    if what == "room name" and 0 < len(words) <= 2:
        lead = [(shown, reason) for stem, shown, reason in services + whole if _starts(words[0], stem)
                and (stem not in _WHOLE_SERVICE or _same_glyphs(words[0], stem))]
        return lead[0] if lead else None
    return None


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
    """A word in two scripts, or (`whole`: a pseudonym) Latin and Cyrillic letters in one name: no
    real word is written so, and it is the usual way to forge one ("Natalia" with a Cyrillic а). A
    display name, a room's name or topic may be bilingual word by word ("Natalia / Наталья"): a word
    written wholly in look-alikes of another script is still compared by its skeleton."""
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
    if _mixed_scripts(unicodedata.normalize("NFKC", name), whole=what == "pseudonym"):
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
    reserved = None if is_hub else _reserved_word(words, what)
    if reserved:
        shown, reason = reserved
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
