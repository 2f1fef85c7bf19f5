"""Server-side rules every Crossline room obeys. Pure functions: the Synapse module adapts them.

The rules are an allow-list. Whatever Synapse would store in clear must be something a Matrix
client genuinely needs in clear, with its content checked; everything else is refused:

- messages: only `m.room.encrypted` (Megolm ciphertext), a reaction that is one emoji (Element
  Web and matrix-nio never encrypt reactions), and a redaction without a reason;
- room state: only the settings a Crossline room needs, each with its content checked, and the
  hub's own moderation policy rules from the hub's admin account;
- members: the account's own global name and avatar only (no per-room name), and no reasons.

Each check returns None when the action is allowed, or a refusal sentence that is shown to
the person's Matrix client as the error message, so it says what happened and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crossline_policies import names

MEGOLM = "m.megolm.v1.aes-sha2"
# The hardened config creates version 11 rooms. Older versions lack protections the rules
# below rely on (stricter power levels, the redaction algorithm that keeps them, state
# resolution fixes); 12 keeps them all.
ROOM_VERSIONS = ("11", "12")
HISTORY_VISIBILITIES = ("joined", "invited", "shared")
# What keeps a room private and encrypted: a redaction would strip it.
PROTECTED_STATE = frozenset({
    "m.room.create", "m.room.encryption", "m.room.join_rules", "m.room.history_visibility",
    "m.room.guest_access", "m.room.power_levels",
})
POLICY_RULES = frozenset({"m.policy.rule.user", "m.policy.rule.room", "m.policy.rule.server"})
MAX_NAME = 255
MAX_TOPIC = 1000
# A topic's forms (plain text and HTML), and the settings a new room may start with: each text is
# checked against every protected name, so their number is bounded too (the check costs time in
# Synapse's reactor, which serves everyone).
MAX_TOPIC_FORMS = 2
MAX_INITIAL_STATE = 10
TOMBSTONE_BODY = "This room has been replaced"  # what Synapse writes on an upgrade

NOT_ENCRYPTED = (
    "Unencrypted messages are refused in Crossline rooms: this one ({kind}) was not encrypted, "
    "so it was not sent. Turn on encryption in your Matrix client (Element and "
    "FluffyChat do this by default) and send again. Polls, calls and locations that some clients "
    "send unencrypted are not available in Crossline rooms."
)
NOT_A_SETTING = (
    "Crossline rooms do not accept the room setting '{kind}', so nothing was changed. A room's "
    "name, topic, picture, pinned messages, members and permissions can be changed; everything "
    "else stays as the hub set it."
)
MEMBER_REASON = (
    "Crossline rooms do not accept a reason with an invitation, a removal, a ban or a leave: the "
    "server and everyone in the room would see it in clear. Do it again with the reason left "
    "empty; moderators record their reasons privately on the hub."
)
REDACTION_REASON = (
    "Crossline rooms do not accept a reason when a message is removed: the server and everyone in "
    "the room would see it in clear. Remove the message again and leave the reason empty."
)
PER_ROOM_PROFILE = (
    "Crossline rooms show each account's own display name and picture: a different name or "
    "picture in one room is refused, because it could be used to pass as someone else. Change "
    "your display name or picture in your account settings instead; it applies to every room."
)
ODD_ENCRYPTED = (
    "This encrypted message is not in the form Crossline rooms accept (Megolm ciphertext with "
    "nothing readable beside it), so it was not sent. Update your Matrix client, or use Element "
    "or FluffyChat."
)
ALIASES = (
    "Room addresses are not available on Crossline: an address is stored in clear and lets "
    "people find the room by name. Invite people to the room instead."
)
NO_AVATARS = (
    "Pictures for profiles and rooms are not available on Crossline: the server would keep them "
    "unencrypted for anyone to fetch. Nothing was changed."
)
ONE_EMOJI = (
    "Reactions travel unencrypted, so Crossline rooms accept a single emoji as a reaction and "
    "nothing else. Pick one emoji, or write your words as a message: messages are encrypted."
)


@dataclass(frozen=True)
class Profile:
    """An account's global display name and avatar, as Synapse copies them into a join."""

    displayname: str | None = None
    avatar_url: str | None = None


@dataclass(frozen=True)
class RoomEvent:
    """What the rules need to know about an event about to be stored."""

    type: str
    content: Mapping[str, Any]
    state_key: str | None = None  # None for a message, "" or a user id for room state
    # A redaction: the type of the room's current state event it would strip, if any.
    redacts_state: str | None = None
    # A member event: the global profile of the account the event is about.
    profile: Profile = field(default_factory=Profile)
    # Policy rules (Draupnir/Mjolnir lists) come only from the hub's own admin account.
    sender_is_hub_admin: bool = False
    # Set only when the hub's bot sends: where the hub's live-session pages are (its widgets' only URL).
    live_page_prefix: str | None = None
    # Names nobody but their owner may take (a join's display name, a room's name and topic); set
    # for those events only. `sender` is who sets them.
    protected: names.Protected | None = None
    sender: str = ""


def check_event(event: RoomEvent) -> str | None:
    return _check_shape(event) or _check_names(event)


def _check_names(event: RoomEvent) -> str | None:
    """Nobody passes as staff, the bot, a pseudonym or a hub room (`names`): her display name as a
    join shows it (so also a per-room name, were one allowed), a room's name and topic."""
    if event.protected is None or event.state_key is None:
        return None
    content = event.content
    if event.type == "m.room.member" and content.get("membership") == "join" and content.get("displayname"):
        return names.check_name(str(content["displayname"]), event.state_key, event.protected)
    if event.type == "m.room.name" and content.get("name"):
        return names.check_name(str(content["name"]), event.sender, event.protected, "room name")
    if event.type == "m.room.topic":
        rich = content.get("m.topic")
        blocks = rich.get("m.text", []) if isinstance(rich, Mapping) else rich if isinstance(rich, list) else []
        texts = [content.get("topic") or "", *(b.get("body") or "" for b in blocks if isinstance(b, Mapping))]
        return names.check_names([t for t in dict.fromkeys(texts) if t], event.sender, event.protected, "room topic")
    return None


def _check_shape(event: RoomEvent) -> str | None:
    if event.state_key is None:
        check = _MESSAGES.get(event.type)
        if check is None:
            return NOT_ENCRYPTED.format(kind=event.type)
        return check(event)
    if event.type == "m.room.member":
        return _member(event.content, event.profile)
    if event.type in POLICY_RULES and event.sender_is_hub_admin:
        return _policy_rule(event.content)
    if event.type == WIDGETS:
        return _live_widget(event.state_key, event.content, event.live_page_prefix)
    check = _STATE.get(event.type)
    if check is None or event.state_key != "":
        return NOT_A_SETTING.format(kind=event.type)
    return check(event.content)


def check_create_room(request: Mapping[str, Any], creator: str = "",
                      protected: names.Protected | None = None) -> str | None:
    """The whole request before anything is stored: Synapse writes the room's first events one
    by one, so a refusal half-way would leave half a room."""
    if request.get("visibility") == "public":
        return "Crossline rooms cannot be listed in a public room directory. Create a private room instead."
    if request.get("preset") == "public_chat":
        return "Crossline rooms are invite-only. Use the private chat preset."
    if request.get("room_alias_name"):
        return ALIASES
    if request.get("invite_3pid"):
        return "Crossline rooms can only invite hub members by their Matrix account, not by email or phone."
    version = request.get("room_version", ROOM_VERSIONS[0])
    first_state = [("m.room.create", {**_mapping(request.get("creation_content")), "room_version": version}, "")]
    for key, event_type in (("name", "m.room.name"), ("topic", "m.room.topic")):
        if key in request:
            first_state.append((event_type, {key: request[key]}, ""))
    if "power_level_content_override" in request:
        first_state.append(("m.room.power_levels", _mapping(request["power_level_content_override"]), ""))
    initial = request.get("initial_state") or []
    if not isinstance(initial, list) or len(initial) > MAX_INITIAL_STATE:
        return f"A new room can start with at most {MAX_INITIAL_STATE} settings. Create it with fewer."
    for state in initial:
        state = _mapping(state)
        first_state.append((str(state.get("type", "")), _mapping(state.get("content")), str(state.get("state_key", ""))))
    keys = [(event_type, state_key) for event_type, _, state_key in first_state[-len(initial):]] if initial else []
    if len(set(keys)) != len(keys):
        return "A new room's settings name each setting once. Create it again with each setting given once."
    for event_type, content, state_key in first_state:
        refusal = check_event(RoomEvent(event_type, content, state_key, protected=protected, sender=creator))
        if refusal:
            return refusal
    return None


def check_publish_room() -> str:
    return "Crossline rooms are private and cannot be published to the room directory."


# -- Messages -----------------------------------------------------------------------------------


def _encrypted(event: RoomEvent) -> str | None:
    content = event.content
    if set(content) - {"algorithm", "ciphertext", "sender_key", "device_id", "session_id", "m.relates_to"}:
        return ODD_ENCRYPTED
    if content.get("algorithm") != MEGOLM or not _is_base64(content.get("ciphertext")):
        return ODD_ENCRYPTED
    if not all(_is_token(content.get(key)) for key in ("sender_key", "device_id", "session_id") if key in content):
        return ODD_ENCRYPTED
    if "m.relates_to" in content:
        return _relation(content["m.relates_to"], ODD_ENCRYPTED)
    return None


def _reaction(event: RoomEvent) -> str | None:
    relation = event.content.get("m.relates_to")
    if set(event.content) != {"m.relates_to"} or not isinstance(relation, Mapping):
        return ONE_EMOJI
    if relation.get("rel_type") != "m.annotation" or "key" not in relation or "event_id" not in relation:
        return ONE_EMOJI
    return _relation(relation, ONE_EMOJI)


def _redaction(event: RoomEvent) -> str | None:
    if "reason" in event.content:
        return REDACTION_REASON
    if set(event.content) - {"redacts"}:
        return "Crossline rooms accept a plain removal only. Remove the message again from your client's menu."
    if event.redacts_state in PROTECTED_STATE:
        return (
            f"This event ({event.redacts_state}) keeps the room private and encrypted, so it cannot be "
            "removed. Nothing was changed."
        )
    return None


_MESSAGES = {"m.room.encrypted": _encrypted, "m.reaction": _reaction, "m.room.redaction": _redaction}
_REL_TYPES = ("m.annotation", "m.reference", "m.replace", "m.thread")


def _relation(relation: Any, refusal: str) -> str | None:
    """`m.relates_to` stays in clear even on encrypted events: ids and a relation type only,
    and an annotation's key only if it is one emoji."""
    if not isinstance(relation, Mapping):
        return refusal
    if set(relation) - {"rel_type", "event_id", "key", "is_falling_back", "m.in_reply_to"}:
        return refusal
    if "rel_type" in relation and relation["rel_type"] not in _REL_TYPES:
        return refusal
    if "event_id" in relation and not _is_id(relation["event_id"], "$"):
        return refusal
    if "is_falling_back" in relation and not isinstance(relation["is_falling_back"], bool):
        return refusal
    reply = relation.get("m.in_reply_to", {"event_id": "$"})
    if not isinstance(reply, Mapping) or set(reply) != {"event_id"} or not _is_id(reply["event_id"], "$"):
        return refusal
    if "key" in relation and (relation.get("rel_type") != "m.annotation" or not is_single_emoji(relation["key"])):
        return ONE_EMOJI
    return None


# Code points that start an emoji; `_MODIFIERS` may follow within one.
_PICTOGRAPHS = (
    (0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2300, 0x23FF), (0x2B00, 0x2BFF), (0x2190, 0x21FF),
    (0x25A0, 0x25FF), (0x2900, 0x297F), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3299),
    (0xA9, 0xA9), (0xAE, 0xAE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x24C2, 0x24C2),
)
_MODIFIERS = ((0xFE0E, 0xFE0F), (0x1F3FB, 0x1F3FF), (0x20E3, 0x20E3))
_REGIONAL = (0x1F1E6, 0x1F1FF)
ZWJ = "\u200d"
# Tag characters mirror ASCII invisibly, so they could spell any text after a pictograph. They are
# allowed only in the three recommended subdivision flags (black flag, region in tag letters, cancel
# tag): any wider form, even 2 to 6 tag letters or digits, would still spell short words.
_SUBDIVISION_FLAGS = frozenset(
    "\U0001F3F4" + "".join(chr(0xE0000 + ord(char)) for char in region) + "\U000E007F"
    for region in ("gbeng", "gbsct", "gbwls")
)


def _in(char: str, ranges) -> bool:
    return any(low <= ord(char) <= high for low, high in ranges)


def is_single_emoji(text: Any) -> bool:
    """One emoji as people pick them: a pictograph with skin tone or presentation modifiers, a
    country flag, the England, Scotland or Wales flag, a keycap, or up to four of them joined
    into one (a family)."""
    if not isinstance(text, str) or not text or len(text) > 32:
        return False
    if text in _SUBDIVISION_FLAGS:
        return True
    parts = text.split(ZWJ)
    if len(parts) > 4:
        return False
    for part in parts:
        if not part:
            return False
        base, rest = part[0], part[1:]
        if _in(base, (_REGIONAL,)):
            if len(parts) != 1 or len(rest) != 1 or not _in(rest, (_REGIONAL,)):
                return False
        elif base in "0123456789#*":
            if rest not in ("\u20e3", "\ufe0f\u20e3"):
                return False
        elif not _in(base, _PICTOGRAPHS) or not all(_in(char, _MODIFIERS) for char in rest):
            return False
    return True


# -- Room state -----------------------------------------------------------------------------------


def _setting(content: Mapping[str, Any], allowed: set[str], setting: str) -> str | None:
    extra = sorted(set(content) - allowed)
    if extra:
        return f"The room's {setting} cannot carry '{extra[0]}' in a Crossline room, so nothing was changed."
    return None


def _room_version(version: str) -> str | None:
    if version not in ROOM_VERSIONS:
        return (
            f"Crossline rooms use room version {' or '.join(ROOM_VERSIONS)}: version {version} lacks "
            "protections the hub relies on. Create or upgrade the room without choosing a version."
        )
    return None


def _create(content: Mapping[str, Any]) -> str | None:
    if "type" in content:
        return "Spaces and other special rooms are not available on Crossline. Create an ordinary room."
    refusal = _setting(content, {"room_version", "creator", "predecessor", "m.federate", "additional_creators"},
                       "creation")
    if refusal:
        return refusal
    if "m.federate" in content and not isinstance(content["m.federate"], bool):
        return "The room's 'm.federate' must be true or false."
    predecessor = content.get("predecessor", {"room_id": "!"})
    if not isinstance(predecessor, Mapping) or set(predecessor) - {"room_id", "event_id"} or \
            not _is_id(predecessor.get("room_id"), "!"):
        return "The room's predecessor must name only the room it replaces."
    creators = [content.get("creator", "@")] + list(_sequence(content.get("additional_creators", [])))
    if not all(_is_id(creator, "@") for creator in creators):
        return "A room's creators must be Matrix accounts."
    return _room_version(str(content.get("room_version")))


def _member(content: Mapping[str, Any], profile: Profile) -> str | None:
    if "reason" in content:
        return MEMBER_REASON
    if content.get("membership") not in ("invite", "join", "leave", "ban"):
        return "Crossline rooms are joined by invitation only: invite, join, leave or ban."
    if set(content) - {"membership", "displayname", "avatar_url", "is_direct"}:
        return "A membership in a Crossline room carries the account's name and picture only."
    if content.get("displayname") not in (None, profile.displayname):
        return PER_ROOM_PROFILE
    if content.get("avatar_url") not in (None, profile.avatar_url):
        return PER_ROOM_PROFILE
    if "is_direct" in content and not isinstance(content["is_direct"], bool):
        return "'is_direct' must be true or false."
    return None


_LEVELS = {"users_default", "events_default", "state_default", "ban", "kick", "redact", "invite", "historical"}


def _power_levels(content: Mapping[str, Any]) -> str | None:
    refusal = _setting(content, _LEVELS | {"users", "events", "notifications"}, "permissions")
    if refusal:
        return refusal
    levels = [content[key] for key in _LEVELS if key in content]
    users, events = _mapping(content.get("users")), _mapping(content.get("events"))
    notifications = _mapping(content.get("notifications"))
    if set(notifications) - {"room"} or not all(_is_id(user, "@") for user in users) or \
            not all(_is_event_type(kind) for kind in events):
        return "The room's permissions may name only accounts, event types and '@room' notifications."
    levels += [*users.values(), *events.values(), *notifications.values()]
    if not all(isinstance(level, int) and not isinstance(level, bool) for level in levels):
        return "Every permission level must be a whole number."
    return None


def _join_rules(content: Mapping[str, Any]) -> str | None:
    if dict(content) != {"join_rule": "invite"}:
        return "Crossline rooms are invite-only: the join rule must stay 'invite'."
    return None


def _history_visibility(content: Mapping[str, Any]) -> str | None:
    if set(content) != {"history_visibility"} or content["history_visibility"] not in HISTORY_VISIBILITIES:
        return (
            "Crossline room history can be visible to members only (since they joined, were invited, "
            "or all of it), never to people outside the room."
        )
    return None


def _guest_access(content: Mapping[str, Any]) -> str | None:
    if dict(content) != {"guest_access": "forbidden"}:
        return "Guests cannot join Crossline rooms."
    return None


def _encryption(content: Mapping[str, Any]) -> str | None:
    periods = [content[key] for key in ("rotation_period_ms", "rotation_period_msgs") if key in content]
    if content.get("algorithm") != MEGOLM or set(content) - {"algorithm", "rotation_period_ms", "rotation_period_msgs"} \
            or not all(isinstance(period, int) and not isinstance(period, bool) for period in periods):
        return f"Crossline rooms must be end-to-end encrypted with {MEGOLM}; encryption cannot be changed."
    return None


def _name(content: Mapping[str, Any]) -> str | None:
    name = content.get("name")
    refusal = _setting(content, {"name"}, "name")
    if refusal or not isinstance(name, str) or len(name) > MAX_NAME:
        return refusal or f"A room name must be text of at most {MAX_NAME} characters."
    return None


def _topic(content: Mapping[str, Any]) -> str | None:
    refusal = _setting(content, {"topic", "m.topic"}, "topic")
    if refusal:
        return refusal
    rich = content.get("m.topic", [])
    # Current clients send {"m.text": [blocks]}; the first version of the proposal, the list.
    blocks = rich["m.text"] if isinstance(rich, Mapping) and set(rich) == {"m.text"} else rich
    if isinstance(blocks, list) and len(blocks) > MAX_TOPIC_FORMS:
        return f"A room topic has at most {MAX_TOPIC_FORMS} forms: plain text, and the same text as HTML."
    if not isinstance(blocks, list) or not all(
        isinstance(block, Mapping) and set(block) <= {"body", "mimetype"}
        and block.get("mimetype", "text/plain") in ("text/plain", "text/html") for block in blocks
    ):
        return "A room topic must be plain text (or the same text as HTML)."
    texts = [content.get("topic", ""), *(block.get("body") for block in blocks)]
    if not all(isinstance(text, str) and len(text) <= MAX_TOPIC for text in texts):
        return f"A room topic must be text of at most {MAX_TOPIC} characters."
    return None


_IMAGE_INFO = {"mimetype", "size", "w", "h", "thumbnail_url", "thumbnail_info", "xyz.amorgan.blurhash"}


def _avatar(content: Mapping[str, Any]) -> str | None:
    # Any uploaded picture would be clear media anyone could fetch (issue 26): a room picture can
    # only be removed. The shape checks below stay for the day the hub offers its own set.
    if content.get("url") or _mapping(content.get("info")).get("thumbnail_url"):
        return NO_AVATARS
    refusal = _setting(content, {"url", "info"}, "picture")
    if refusal:
        return refusal
    info = _mapping(content.get("info"))
    thumbnail = _mapping(info.get("thumbnail_info"))
    urls = [content.get("url", ""), info.get("thumbnail_url", "")]
    values = [value for key, value in {**info, **thumbnail}.items() if key != "thumbnail_info"]
    if set(info) - _IMAGE_INFO or set(thumbnail) - {"mimetype", "size", "w", "h"} or \
            not all(url == "" or _is_id(url, "mxc://") for url in urls) or \
            not all(isinstance(value, int) or (isinstance(value, str) and len(value) <= 100) for value in values):
        return "A room picture must be an uploaded image with its size and type only."
    return None


def _pinned_events(content: Mapping[str, Any]) -> str | None:
    pinned = content.get("pinned")
    if set(content) != {"pinned"} or not isinstance(pinned, list) or not all(_is_id(i, "$") for i in pinned):
        return "Pinned messages must be a list of messages in the room."
    return None


def _tombstone(content: Mapping[str, Any]) -> str | None:
    if set(content) - {"body", "replacement_room"} or content.get("body", "") not in ("", TOMBSTONE_BODY) \
            or not _is_id(content.get("replacement_room"), "!"):
        return "Upgrade the room with your client's room upgrade: a room can only be replaced by its upgrade."
    return None


WIDGETS = "im.vector.modular.widgets"
_LIVE_WIDGET_KEY = re.compile(r"crossline-live-([A-Za-z0-9_-]{1,64})")
NOT_A_WIDGET = (
    "Crossline rooms do not accept widgets: a widget's address is stored in clear and opens another site "
    "inside the room. The hub's bot adds the room's live session itself."
)


def _live_widget(state_key: str, content: Mapping[str, Any], page_prefix: str | None) -> str | None:
    """The one widget a Crossline room takes: a live session's page on this hub, set (and emptied
    when the session ends) by the hub's bot. Anyone else's widget, or any other address, is refused."""
    found = _LIVE_WIDGET_KEY.fullmatch(state_key)
    if not page_prefix or found is None:
        return NOT_A_WIDGET
    if not content:
        return None
    name = content.get("name", "")
    if set(content) - {"type", "url", "name", "data"} or content.get("type") != "m.custom" \
            or content.get("url") != page_prefix + found.group(1) or not isinstance(name, str) \
            or len(name) > MAX_NAME or content.get("data", {}) != {}:
        return NOT_A_WIDGET
    return None


def _policy_rule(content: Mapping[str, Any]) -> str | None:
    if set(content) - {"entity", "recommendation", "reason"}:
        return "A policy rule names an entity, a recommendation and a reason only."
    return None


_STATE = {
    "m.room.create": _create,
    "m.room.power_levels": _power_levels,
    "m.room.join_rules": _join_rules,
    "m.room.history_visibility": _history_visibility,
    "m.room.guest_access": _guest_access,
    "m.room.encryption": _encryption,
    "m.room.name": _name,
    "m.room.topic": _topic,
    "m.room.avatar": _avatar,
    "m.room.pinned_events": _pinned_events,
    "m.room.tombstone": _tombstone,
}


# -- Shapes -----------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[!-~]{1,255}")  # printable ASCII, no spaces
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_.\-]{1,255}")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {"": value} if value is not None else {}


def _sequence(value: Any) -> list:
    return value if isinstance(value, list) else [None]


def _is_token(value: Any) -> bool:
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def _is_base64(value: Any) -> bool:
    return isinstance(value, str) and _BASE64.fullmatch(value) is not None


def _is_id(value: Any, sigil: str) -> bool:
    return _is_token(value) and value.startswith(sigil)


def _is_event_type(value: Any) -> bool:
    return isinstance(value, str) and _EVENT_TYPE.fullmatch(value) is not None
