"""Matrix room events to commands: pure and total. Any event, as nio hands it over (`event.source`:
type, content and the rest, decrypted), gives a `Message`, an `Edit`, a `Redaction` or an `Ignore`
with the reason; never an exception, whatever the shape, size or characters of its content.

An event's content is whatever its sender's client put there: `m.relates_to` may be a string, a
list or null, a body may be a number, 64 KB long or hold lone surrogates. Only fields of the
expected type count; anything else is ignored, with a reason a log can give without content.

Edits are as Element sends them: `m.relates_to: {rel_type: m.replace, event_id}` and the new text
in `m.new_content` (the outer body, "* new text", is a fallback for old clients and not read).
Replies may or may not quote the replied-to message as "> " lines (the fallback is removed).
A message in a thread replies to the thread's root unless it quotes another message of the thread
(`is_falling_back` false).
"""

from __future__ import annotations

from dataclasses import dataclass

from crossline.domain import room_commands as commands

MESSAGE = "m.room.message"
REDACTION = "m.room.redaction"
TEXT = "m.text"
MAX_EVENT_ID = 255  # what the hub's tables hold; Matrix event ids are far shorter


@dataclass(frozen=True)
class Ignore:
    reason: str  # never content: it may be logged


@dataclass(frozen=True)
class Message:
    command: commands.Command
    reply_to: str | None  # the event this message replies to (thread root included)


@dataclass(frozen=True)
class Edit:
    original_event_id: str
    command: commands.Command  # what the edited message now says


@dataclass(frozen=True)
class Redaction:
    redacted_event_id: str


Parsed = Message | Edit | Redaction | Ignore


def parse_event(event: object) -> Parsed:
    if not isinstance(event, dict):
        return Ignore("not an event")
    kind = event.get("type")
    content = event.get("content")
    if not isinstance(content, dict):
        return Ignore("content is not an object")
    if kind == REDACTION:
        # Room version 11 moved `redacts` into the content; older rooms have it at the top.
        target = _event_id(content.get("redacts")) or _event_id(event.get("redacts"))
        return Redaction(target) if target else Ignore("redaction of no event")
    if kind != MESSAGE:
        return Ignore("not a message")
    relates = content.get("m.relates_to")
    relates = relates if isinstance(relates, dict) else {}
    if relates.get("rel_type") == "m.replace":
        return _edit(relates, content.get("m.new_content"))
    body = _text_body(content)
    if isinstance(body, Ignore):
        return body
    reply_to = _reply_target(relates)
    if reply_to:
        body = commands.strip_reply_fallback(body)
    return Message(commands.parse_text(body, is_reply=reply_to is not None), reply_to)


def _edit(relates: dict, new_content: object) -> Parsed:
    original = _event_id(relates.get("event_id"))
    if not original:
        return Ignore("edit of no event")
    if not isinstance(new_content, dict):
        return Ignore("edit without new content")
    body = _text_body(new_content)
    if isinstance(body, Ignore):
        return body
    return Edit(original, commands.parse_text(body))


def _text_body(content: dict) -> str | Ignore:
    if content.get("msgtype") != TEXT:
        return Ignore("not a text message")
    body = content.get("body")
    if not isinstance(body, str):
        return Ignore("body is not text")
    return clean_text(body)


def _reply_target(relates: dict) -> str | None:
    in_reply_to = relates.get("m.in_reply_to")
    replied = _event_id(in_reply_to.get("event_id")) if isinstance(in_reply_to, dict) else None
    if relates.get("rel_type") == "m.thread":
        root = _event_id(relates.get("event_id"))
        if replied and relates.get("is_falling_back") is False:
            return replied
        return root or replied
    return replied


def _event_id(value: object) -> str | None:
    if isinstance(value, str) and value.startswith("$") and 1 < len(value) <= MAX_EVENT_ID and value.isprintable():
        return value
    return None


def clean_text(text: str) -> str:
    """Text the hub can store and send: lone surrogates (valid in JSON, not in UTF-8) become U+FFFD,
    and control characters other than newline and tab (NUL is refused by PostgreSQL) are dropped."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return "".join(c for c in text if c in "\n\t" or not (c < " " or "\x7f" <= c < "\xa0"))
