"""What a message in a consultation room asks the bot to do. Pure: text in, command out.

Ordinary conversation is not a command and is ignored. Commands start with "!"; a reply to one of
the bot's question messages is a statement for that question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crossline.domain.consultations import Phase, Refusal, VoteValue, parse_vote

HELP = (
    "How to take part:\n"
    "• Reply to a question to send a statement, or write: !say 1 your statement (1 = question number)\n"
    "• Vote: !agree 3, !disagree 3 or !pass 3 (3 = statement number; several at once: !agree 3 5)\n"
    "• Change your vote by voting again; withdraw your statement: !withdraw 3\n"
    "Votes are encrypted like your messages; emoji reactions are not, so they do not count.\n"
    "• Report abuse privately: reply to the message with !report and a few words (your command is removed)"
)
FACILITATOR_HELP = (
    "Facilitators: !open (collect statements), !voting, !close, !approve 3, !reject 3 reason, !status"
)


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


Command = Say | Vote | Withdraw | Moderate | ChangePhase | Status | Help

_PHASE_WORDS = {"open": Phase.COLLECTING, "collect": Phase.COLLECTING, "voting": Phase.VOTING,
                "vote-now": Phase.VOTING, "close": Phase.CLOSED}


def strip_reply_fallback(body: str) -> str:
    """Clients quote the replied-to message as '> ' lines before the reply itself."""
    lines = body.split("\n")
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


def parse(body: str, is_reply_to_question: bool) -> Command | None:
    text = strip_reply_fallback(body) if is_reply_to_question else body.strip()
    if not text.startswith("!"):
        return Say(None, text) if is_reply_to_question else None
    word, _, rest = text[1:].partition(" ")
    word, rest = word.casefold(), rest.strip()
    if word in ("agree", "disagree", "pass"):
        return Vote(_numbers(rest, word), parse_vote(word))
    if word == "vote":
        parts = rest.split()
        if len(parts) < 2:
            raise Refusal("Write !vote, the statement number and your vote, for example: !vote 3 agree")
        return Vote(_numbers(" ".join(parts[:-1]), "vote"), parse_vote(parts[-1]))
    if word in ("say", "statement", "s"):
        match = re.match(r"^(\d+)\s+(.+)$", rest, re.S)
        if match:
            return Say(int(match.group(1)), match.group(2))
        if not rest:
            raise Refusal("Write your statement after !say, for example: !say 1 Bridges should reopen")
        return Say(None, rest)
    if word == "withdraw":
        return Withdraw(_one_number(rest, "withdraw"))
    if word in ("approve", "reject"):
        number_text, _, reason = rest.partition(" ")
        return Moderate(_one_number(number_text, word), word == "approve", reason.strip())
    if word in _PHASE_WORDS:
        return ChangePhase(_PHASE_WORDS[word])
    if word == "status":
        return Status()
    if word == "help":
        return Help()
    raise Refusal(f"I do not know the command !{word}.\n{HELP}")


def _numbers(text: str, word: str) -> tuple[int, ...]:
    parts = [part for part in re.split(r"[\s,]+", text) if part]
    if not parts or not all(part.isdigit() for part in parts):
        raise Refusal(f"Write the statement number after !{word}, for example: !{word} 3")
    if len(parts) > 50:
        raise Refusal("At most 50 votes in one message.")
    return tuple(int(part) for part in parts)


def _one_number(text: str, word: str) -> int:
    numbers = _numbers(text, word)
    if len(numbers) != 1:
        raise Refusal(f"Write one statement number after !{word}.")
    return numbers[0]


def report_reason(body: str) -> str | None:
    """The reason of a reply-to-report command ("!report" and optional words), or None when the
    message is not one. Only meaningful in a reply: the reply names the reported message."""
    text = strip_reply_fallback(body)
    word, _, rest = text.partition(" ")
    return rest.strip() if word.casefold() == "!report" else None
