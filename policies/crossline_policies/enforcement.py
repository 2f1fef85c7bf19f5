"""Server-side rules every Crossline room obeys. Pure functions: the Synapse module adapts them.

Each check returns None when the action is allowed, or a refusal sentence that is shown to
the person's Matrix client as the error message, so it says what happened and what to do.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

MEGOLM = "m.megolm.v1.aes-sha2"

# Event types whose content is what people say: they must only ever travel encrypted.
CONVERSATION_EVENT_TYPES = frozenset({"m.room.message", "m.sticker", "m.poll.start", "m.poll.response"})


def check_create_room(request: Mapping[str, Any]) -> str | None:
    if request.get("visibility") == "public":
        return "Crossline rooms cannot be listed in a public room directory. Create a private room instead."
    if request.get("preset") == "public_chat":
        return "Crossline rooms are invite-only. Use the private chat preset."
    for state in request.get("initial_state") or []:
        refusal = check_state_event(state.get("type", ""), state.get("content") or {})
        if refusal:
            return refusal
    return None


def check_state_event(event_type: str, content: Mapping[str, Any]) -> str | None:
    if event_type == "m.room.join_rules" and content.get("join_rule") != "invite":
        return "Crossline rooms are invite-only: the join rule must stay 'invite'."
    if event_type == "m.room.encryption" and content.get("algorithm") != MEGOLM:
        return f"Crossline rooms must be end-to-end encrypted with {MEGOLM}; encryption cannot be changed."
    if event_type == "m.room.history_visibility" and content.get("history_visibility") == "world_readable":
        return "Crossline room history cannot be made readable by people outside the room."
    if event_type == "m.room.guest_access" and content.get("guest_access") != "forbidden":
        return "Guests cannot join Crossline rooms."
    return None


def check_event(event_type: str, sender: str, is_state: bool, exempt_users: Collection[str]) -> str | None:
    if is_state or sender in exempt_users:
        return None
    if event_type in CONVERSATION_EVENT_TYPES:
        return (
            "Unencrypted messages are refused in Crossline rooms. "
            "Turn on encryption in your Matrix client (Element and FluffyChat do this by default) and send again."
        )
    return None


def check_invite(inviter: str, invitee: str, known_user_ids: Collection[str]) -> str | None:
    if inviter not in known_user_ids:
        return "Only members of this Crossline hub can invite people. Ask a facilitator."
    if invitee not in known_user_ids:
        return (
            f"{invitee} is not a member of this Crossline hub. "
            "A facilitator can send them an invitation from the hub first."
        )
    return None


def check_publish_room() -> str:
    return "Crossline rooms are private and cannot be published to the room directory."
