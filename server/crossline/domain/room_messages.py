"""How the bot lays out what it says in a room (pure).

A room message stays readable on a phone and far below Matrix's 64 KiB event limit: long lists
become several messages, never one message per item.

Nothing the bot posts carries a member's words with more power than she has. Every message is
plain text (no formatted_body, so no HTML of hers renders) with `m.mentions` set (empty: the bot
notifies nobody). Her words inside it (a statement, her display name) are quoted, kept on one
line, stripped of the controls that reorder text, and have an invisible word joiner after each
"@", ":" and "." that precedes a name or a path, so "@room", a user id or a link she wrote is shown as she
wrote it but is neither a mention nor a link in any client.
"""

from __future__ import annotations

import json
import re

MAX_LINES = 25
MAX_CHARS = 4000
# Matrix refuses events over 65,536 bytes; an encrypted event carries the content base64-encoded
# (4/3) inside a JSON envelope with keys and ids, so the plaintext content must stay well under.
MAX_CONTENT_BYTES = 40_000
WORD_JOINER = "\u2060"
# Embeddings, overrides and isolates: they reorder the text around them on screen.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_LINK_OR_MENTION = re.compile(r"([@:.])(?=[\w/])")


def member_words(text: str, max_chars: int = 600) -> str:
    """A member's words as the bot may show them: one line, no reordering, no mention, no link."""
    text = " ".join(_BIDI_CONTROLS.sub("", text).split())[:max_chars]
    return _LINK_OR_MENTION.sub(lambda match: match.group(1) + WORD_JOINER, text)


def quoted_statement(number: int, text: str) -> str:
    """A statement as the bot lists it: its number, then her words in quotation marks, so that no
    statement reads as a line of the bot's own."""
    return f"Statement {number}: “{member_words(text)}”"


def notice(body: str, **extra) -> dict:
    """The content of a bot message: a plain-text notice that mentions nobody."""
    return {"msgtype": "m.notice", "body": body, "m.mentions": {}, **extra}


def fit(content: dict, max_bytes: int = MAX_CONTENT_BYTES) -> dict:
    """The content, its body cut (at a character, with an ellipsis) so that the whole content fits
    in `max_bytes` of JSON; whatever else it holds is kept."""
    if _size(content) <= max_bytes or not isinstance(content.get("body"), str):
        return content
    body = content["body"]
    kept, over = 0, len(body)  # the longest prefix that fits, by bisection
    while kept + 1 < over:
        middle = (kept + over) // 2
        if _size({**content, "body": body[:middle] + "…"}) <= max_bytes:
            kept = middle
        else:
            over = middle
    return {**content, "body": body[:kept] + "…"}


def _size(content: dict) -> int:
    return len(json.dumps(content, ensure_ascii=False).encode())


def chunked(entries: list[str], max_entries: int = MAX_LINES, max_chars: int = MAX_CHARS) -> list[list[str]]:
    """Consecutive entries grouped, in order, at most `max_entries` and about `max_chars` a group
    (an entry longer than that is a group of its own)."""
    groups: list[list[str]] = []
    size = 0
    for entry in entries:
        if not groups or len(groups[-1]) >= max_entries or size + len(entry) > max_chars:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += len(entry) + 1
    return groups


def answer_entry(name: str, answer: str) -> str:
    """One person's answer inside a combined notice: her name, then the answer, indented."""
    name = member_words(name, 60) or "someone"
    first, *rest = answer.split("\n")
    return "\n".join([f"• {name}: {first}", *(f"  {line}" for line in rest)])
