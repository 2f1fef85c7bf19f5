"""What the bot says in a member's direct room, and how it reads a vote's "in 12" there (pure).

Every sentence the bot writes in a direct room is here, under a key, so that a translation is one
more catalog. There are no catalogs but English yet: `say` takes the member's language and falls
back to English for any language or key a catalog lacks.
"""

from __future__ import annotations

import re

ENGLISH = {
    "welcome": "Hello. In this private room you can vote without anyone in the consultation's room seeing "
               "it, and ask where you take part.\n{help}",
    "help": "• Vote: !agree 3, !disagree 3 or !pass 3 (3 = statement number). If several of your consultations "
            "are voting, add “in” and the consultation's number: !agree 3 in 12\n"
            "• !status: your consultations, their phases and the statements you voted on\n"
            "• Write statements in the consultation's room.",
    "only_here": "Here I take votes, !status and !help. Write statements in the consultation's room.",
    "not_a_member": "I serve members of a line of this hub only, so I am not joining this room. If you should "
                    "be one, ask a facilitator.",
    "not_private": "I talk privately only in a direct, encrypted room with just you and me, so I am not joining "
                   "this one. Start a direct chat with me (encryption on) and invite no one else.",
    "already_served": "You already have a private room with me, so I am not staying in this one: vote and ask "
                      "there. If you left it, start a new direct chat with me.",
    "leaving": "This room is no longer a private, encrypted room with just one member and me, so I am leaving "
               "it. Start a new direct chat with me to vote privately.",
    "none_voting": "None of your consultations is voting now. Write !status to see their phases.",
    "which": "Several of your consultations are voting. Say which one, for example: !agree 3 in {example}\n{choices}",
    "no_such": "You take part in no consultation with that number. Write !status to see yours.",
    "choice": "{number}: “{title}”",
    "recorded": "✓ Vote recorded on {statements} in “{title}”.",
    "statement": "statement {number}",
    "statements": "statements {numbers}",
    "status_none": "You take part in no consultation at the moment.",
    "status_line": "{number}: “{title}” is {phase}.",
    "status_votes": "  Your votes there: {votes}",
    "status_vote": "statement {number} {value}",
    "status_no_votes": "  You have not voted there.",
    "could_not": "Something went wrong with that message, so it changed nothing. Please send it again.",
    # A picture she sent in a room carries where it was taken (matrix/pictures.py). Never the place itself.
    "picture_opened": "I opened this private room with you (nobody else is in it) to tell you about a picture "
                      "you sent. I said nothing about it in the other room.",
    "picture_reveals": "A picture you sent in “{room}”{picture} carries, hidden in its file, the place where "
                       "it was taken{device}. Anyone in that room who saves the picture can read it.",
    "picture_named": " ({name})",
    "picture_reveals_many": "{count} pictures you sent carry, hidden in their files, the place where they were "
                            "taken{device}. Anyone in those rooms who saves them can read it:\n{pictures}",
    "picture_in_room": "- {name} in “{room}”",
    "picture_unchecked": "You sent {count} more pictures at the same time that I did not check (I check a few a "
                         "minute): if they come from the same app, they most likely carry the place too.",
    "picture_device": " and the phone or camera that took it",
    "picture_remove": "To remove it: in your app, open that message's menu (on a phone, press and hold it) and "
                      "choose Remove. Then, if you still want to share it, send it again from an app that "
                      "leaves the location out, or send a screenshot of it: a screenshot carries no location. "
                      "How to turn location off, app by app: the participants' guide, “{guide}”.",
    "picture_private": "I have told no one else, and I do not keep your picture.",
}
CATALOGS: dict[str, dict[str, str]] = {"en": ENGLISH}

# "... in 12" at the end of a message: the consultation a vote is for. Digits of any one script.
_TARGET = re.compile(r"^(.*\S)\s+in\s+(\d{1,9})\s*$", re.S | re.I)


def say(key: str, language: str = "en", **values: object) -> str:
    catalog = CATALOGS.get(language, ENGLISH)
    return catalog.get(key, ENGLISH[key]).format(**values)


def split_target(text: str) -> tuple[str, int | None]:
    """The command without its "in N", and N (None when the message names no consultation)."""
    match = _TARGET.match(text)
    if not match:
        return text, None
    return match.group(1), int(match.group(2))  # int() reads the digits of every script


def without_target(event: object) -> tuple[object, int | None]:
    """A message event (or an edit's new content) with the "in N" removed from its body, so that the
    room parser reads the vote itself; the event unchanged when it names no consultation."""
    if not isinstance(event, dict) or not isinstance(event.get("content"), dict):
        return event, None
    content = event["content"]
    new_content = content.get("m.new_content")
    inner = new_content if isinstance(new_content, dict) else content
    body = inner.get("body")
    if not isinstance(body, str):
        return event, None
    body, target = split_target(body)
    if target is None:
        return event, None
    if isinstance(new_content, dict):
        content = {**content, "m.new_content": {**new_content, "body": body}}
    else:
        content = {**content, "body": body}
    return {**event, "content": content}, target
