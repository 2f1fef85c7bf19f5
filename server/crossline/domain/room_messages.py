"""How the bot lays out what it says in a room (pure).

A room message stays readable on a phone and far below Matrix's 64 KiB event limit: long lists
become several messages, never one message per item.
"""

from __future__ import annotations

MAX_LINES = 25
MAX_CHARS = 4000


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
    name = " ".join(name.split())[:60] or "someone"
    first, *rest = answer.split("\n")
    return "\n".join([f"• {name}: {first}", *(f"  {line}" for line in rest)])
