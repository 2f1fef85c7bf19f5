"""What the text of a message in a consultation room asks the bot to do. Pure and total: any text
gives a command, never an exception (a command it cannot take is a `Refused` with what to write).

Ordinary conversation is `Plain`: it is a statement only in a reply to one of the bot's question
messages (the caller knows what was replied to). Commands start with "!".

No refusal repeats what the member wrote: the bot's answer must never carry her words (a mention
of the whole room, a fake announcement, a link) with the bot's voice.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from crossline.domain.consultations import Phase, Refusal, VoteValue, parse_vote

HELP = (
    "How to take part:\n"
    "• Reply to a question to send a statement, or write: !say 1 your statement (1 = question number)\n"
    "• Vote: !agree 3, !disagree 3 or !pass 3 (3 = statement number; several at once: !agree 3 5)\n"
    "• Change your vote by voting again (or by editing your vote); withdraw your statement: !withdraw 3\n"
    "• Edit a statement until it is approved; deleting it before then withdraws it\n"
    "Votes are encrypted like your messages; emoji reactions are not, so they do not count.\n"
    "• Report abuse privately: reply to the message with !report and a few words (your command is removed)"
)
FACILITATOR_HELP = (
    "Facilitators: !open (collect statements), !voting, !close, !approve 3, !reject 3 reason, !status"
)
UNKNOWN_COMMAND = "I do not know that command. Write !help to see what you can do."
MAX_VOTES = 50
# Statement numbers are small; a longer number is refused before any arithmetic on it.
MAX_NUMBER_DIGITS = 6


@dataclass(frozen=True)
class Say:
    question_position: int | None  # None: the only question, or the question replied to
    text: str


@dataclass(frozen=True)
class Vote:
    numbers: tuple[int, ...]
    value: VoteValue


@dataclass(frozen=True)
class Withdraw:
    number: int


@dataclass(frozen=True)
class Moderate:
    number: int
    approve: bool
    reason: str


@dataclass(frozen=True)
class ChangePhase:
    target: Phase


@dataclass(frozen=True)
class Status:
    pass


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Report:
    """"!report reason" in a reply: the replied-to message is reported."""
    reason: str


@dataclass(frozen=True)
class Plain:
    """Not a command: a statement when it replies to a question, otherwise conversation."""
    text: str


@dataclass(frozen=True)
class Refused:
    """A command that cannot be taken as written; `message` says what to write instead."""
    message: str


Command = Say | Vote | Withdraw | Moderate | ChangePhase | Status | Help | Report | Plain | Refused

_PHASE_WORDS = {"open": Phase.COLLECTING, "collect": Phase.COLLECTING, "voting": Phase.VOTING,
                "vote-now": Phase.VOTING, "close": Phase.CLOSED}
_SEPARATORS = re.compile(r"[\s,،、]+")  # spaces, commas (Latin, Arabic, ideographic)


def strip_reply_fallback(body: str) -> str:
    """Clients quote the replied-to message as '> ' lines before the reply itself."""
    lines = body.split("\n")
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines)


def parse_text(text: str, is_reply: bool = False) -> Command:
    text = _without_leading_format_characters(text.strip())
    if not text.startswith("!"):
        return Plain(text)
    word, _, rest = text[1:].partition(" ")
    word, rest = word.strip().casefold(), rest.strip()
    if "\n" in word:  # "!agree\n3"
        word, _, more = word.partition("\n")
        rest = f"{more} {rest}".strip()
    if word in ("agree", "disagree", "pass"):
        return _vote(rest, word, word)
    if word == "vote":
        parts = rest.split()
        if len(parts) < 2:
            return Refused("Write !vote, the statement number and your vote, for example: !vote 3 agree")
        return _vote(" ".join(parts[:-1]), parts[-1], "vote")
    if word in ("say", "statement", "s"):
        match = re.match(r"^(\S+)\s+(.+)$", rest, re.S)
        number = _number(match.group(1)) if match else None
        if isinstance(number, int):
            return Say(number, match.group(2))
        if not rest:
            return Refused("Write your statement after !say, for example: !say 1 Bridges should reopen")
        return Say(None, rest)
    if word == "withdraw":
        return _one_number(rest, lambda n: Withdraw(n), "withdraw")
    if word in ("approve", "reject"):
        number_text, _, reason = rest.partition(" ")
        return _one_number(number_text, lambda n: Moderate(n, word == "approve", reason.strip()), word)
    if word in _PHASE_WORDS:
        return ChangePhase(_PHASE_WORDS[word])
    if word == "status":
        return Status()
    if word == "help":
        return Help()
    if word == "report":
        if is_reply:
            return Report(rest)
        return Refused("To report a message, reply to it with !report and a few words.")
    return Refused(UNKNOWN_COMMAND)


def _vote(numbers_text: str, value_word: str, word: str) -> Command:
    try:
        value = parse_vote(value_word)
    except Refusal:
        return Refused("That is not a vote. Vote agree, disagree or pass, for example: !vote 3 agree")
    numbers = _numbers(numbers_text, word)
    return numbers if isinstance(numbers, Refused) else Vote(numbers, value)


def _numbers(text: str, word: str) -> tuple[int, ...] | Refused:
    parts = [part for part in _SEPARATORS.split(text) if part]
    if not parts:
        return Refused(f"Write the statement number after !{word}, for example: !{word} 3")
    if len(parts) > MAX_VOTES:
        return Refused(f"At most {MAX_VOTES} statement numbers in one message.")
    numbers = [_number(part) for part in parts]
    for number in numbers:
        if isinstance(number, Refused):
            return number
    if any(number is None for number in numbers):
        return Refused(f"Write the statement number after !{word}, for example: !{word} 3")
    return tuple(numbers)


def _one_number(text: str, make, word: str) -> Command:
    numbers = _numbers(text, word)
    if isinstance(numbers, Refused):
        return numbers
    if len(numbers) != 1:
        return Refused(f"Write one statement number after !{word}.")
    return make(numbers[0])


def _number(part: str) -> int | Refused | None:
    """A statement number: decimal digits of one script (ASCII, Arabic-Indic, Persian, Devanagari,
    Bengali, Thai, Myanmar, fullwidth...: every Unicode "Nd" digit), at most MAX_NUMBER_DIGITS of them.
    Other numeric forms (superscripts, circled or Roman numerals, fractions, signs, decimal points)
    are refused with what to write; None: not a number at all."""
    if part.isdecimal():
        zeros = {ord(c) - unicodedata.decimal(c) for c in part}
        if len(zeros) != 1:
            return Refused("Write each statement number in one kind of digits, for example: 3")
        if len(part) > MAX_NUMBER_DIGITS:
            return Refused(f"There is no statement with such a long number (at most {MAX_NUMBER_DIGITS} digits).")
        return sum(unicodedata.decimal(c) * 10 ** i for i, c in enumerate(reversed(part)))
    if any(unicodedata.category(c) in ("Nd", "No", "Nl") or c in "+-.٫" for c in part):
        return Refused("Write statement numbers with plain digits, for example: !agree 3")
    return None


def _without_leading_format_characters(text: str) -> str:
    """Right-to-left keyboards put direction marks (and some clients zero-width characters) before
    the "!": they are invisible and must not hide a command."""
    start = 0
    while start < len(text) and (unicodedata.category(text[start]) == "Cf" or text[start].isspace()):
        start += 1
    return text[start:]

