"""Room templates: declarative TOML files in `rooms/`, validated on load, turned into a
`/createRoom` request by a pure function."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from crossline_policies.enforcement import MEGOLM

ROLES = ("participant", "facilitator", "moderator", "negotiator", "admin")
TEMPLATE_ROLES = ("participant", "facilitator", "moderator", "negotiator")
ACTIONS = ("invite", "kick", "ban", "redact", "state_default", "events_default")
HISTORY_VISIBILITIES = ("joined", "invited", "shared")
REQUIRED_TEMPLATES = ("cross-line-dialogue", "consultation", "negotiators", "moderation")

_TOP_LEVEL = {
    "title": str,
    "description": str,
    "hub_bot_member": bool,
    "history_visibility": str,
    "topic_note": str,
    "power_levels": dict,
    "actions": dict,
}


class RoomTemplateError(Exception):
    """A template file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class RoomTemplate:
    name: str
    title: str
    description: str
    hub_bot_member: bool
    history_visibility: str
    topic_note: str
    role_power_levels: Mapping[str, int]
    hub_bot_power_level: int
    action_power_levels: Mapping[str, int]


def builtin_templates_dir() -> Path:
    return Path(str(resources.files("crossline_policies").joinpath("rooms")))


def load_room_templates(directory: Path | None = None) -> dict[str, RoomTemplate]:
    directory = directory or builtin_templates_dir()
    templates = {}
    for path in sorted(directory.glob("*.toml")):
        templates[path.stem] = load_room_template(path)
    missing = [name for name in REQUIRED_TEMPLATES if name not in templates]
    if missing:
        raise RoomTemplateError(f"{directory}: missing room templates: {', '.join(missing)}.")
    return templates


def load_room_template(path: Path) -> RoomTemplate:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise RoomTemplateError(f"{path}: not valid TOML ({error}).") from error
    return parse_room_template(path.stem, data, source=str(path))


def parse_room_template(name: str, data: Mapping[str, Any], source: str) -> RoomTemplate:
    for key, value in data.items():
        if key not in _TOP_LEVEL:
            raise RoomTemplateError(f"{source}: unknown key '{key}'. Known keys: {', '.join(_TOP_LEVEL)}.")
        if not isinstance(value, _TOP_LEVEL[key]):
            raise RoomTemplateError(f"{source}: '{key}' must be a {_TOP_LEVEL[key].__name__}, not {value!r}.")
    for key in _TOP_LEVEL:
        if key not in data:
            raise RoomTemplateError(f"{source}: missing key '{key}'.")
    if data["history_visibility"] not in HISTORY_VISIBILITIES:
        raise RoomTemplateError(
            f"{source}: 'history_visibility' must be one of {', '.join(HISTORY_VISIBILITIES)}, "
            f"not {data['history_visibility']!r}."
        )
    role_levels = _levels(data["power_levels"], (*TEMPLATE_ROLES, "hub_bot"), source, "power_levels")
    for role in TEMPLATE_ROLES:
        if role not in role_levels:
            raise RoomTemplateError(f"{source}: missing key 'power_levels.{role}'.")
    if data["hub_bot_member"] and "hub_bot" not in role_levels:
        raise RoomTemplateError(f"{source}: 'power_levels.hub_bot' is needed when hub_bot_member = true.")
    if not data["hub_bot_member"] and "hub_bot" in role_levels:
        raise RoomTemplateError(f"{source}: 'power_levels.hub_bot' is set but hub_bot_member = false.")
    actions = _levels(data["actions"], ACTIONS, source, "actions")
    for action in ACTIONS:
        if action not in actions:
            raise RoomTemplateError(f"{source}: missing key 'actions.{action}'.")
    return RoomTemplate(
        name=name,
        title=data["title"],
        description=data["description"],
        hub_bot_member=data["hub_bot_member"],
        history_visibility=data["history_visibility"],
        topic_note=data["topic_note"],
        role_power_levels={role: role_levels[role] for role in TEMPLATE_ROLES},
        hub_bot_power_level=role_levels.get("hub_bot", 0),
        action_power_levels=actions,
    )


def _levels(table: Mapping[str, Any], allowed: Iterable[str], source: str, section: str) -> dict[str, int]:
    allowed = tuple(allowed)
    levels = {}
    for key, value in table.items():
        if key not in allowed:
            raise RoomTemplateError(
                f"{source}: unknown key '{section}.{key}'. Known keys: {', '.join(allowed)}."
            )
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise RoomTemplateError(f"{source}: '{section}.{key}' must be a number from 0 to 100, not {value!r}.")
        levels[key] = value
    return levels


@dataclass(frozen=True)
class Invitee:
    user_id: str
    roles: frozenset[str]


def member_power_level(template: RoomTemplate, roles: Iterable[str]) -> int:
    return max((template.role_power_levels.get(role, 0) for role in roles), default=0)


def build_create_room_request(
    template: RoomTemplate,
    room_name: str,
    topic: str,
    creator_user_id: str,
    invitees: Iterable[Invitee],
    bot_user_id: str,
) -> dict[str, Any]:
    """The `/createRoom` body for a room made from `template`. Invitations go out in the same
    request so the room is never without its members' power levels."""
    invitees = [invitee for invitee in invitees if invitee.user_id != creator_user_id]
    users = {creator_user_id: 100}
    for invitee in invitees:
        users[invitee.user_id] = member_power_level(template, invitee.roles)
    invite = [invitee.user_id for invitee in invitees]
    if template.hub_bot_member:
        users[bot_user_id] = template.hub_bot_power_level
        invite.append(bot_user_id)
    actions = template.action_power_levels
    full_topic = f"{topic} — {template.topic_note}" if topic else template.topic_note
    return {
        "preset": "private_chat",
        "visibility": "private",
        "name": room_name,
        "topic": full_topic,
        "invite": invite,
        "power_level_content_override": {
            "users": users,
            "users_default": 0,
            "events_default": actions["events_default"],
            "state_default": actions["state_default"],
            "invite": actions["invite"],
            "kick": actions["kick"],
            "ban": actions["ban"],
            "redact": actions["redact"],
            "notifications": {"room": 50},
            "events": {
                "m.room.encryption": 100,
                "m.room.power_levels": 100,
                "m.room.history_visibility": 100,
                "m.room.join_rules": 100,
                "m.room.tombstone": 100,
                "m.room.server_acl": 100,
                "m.room.name": 50,
                "m.room.topic": 50,
                "m.room.avatar": 50,
            },
        },
        "initial_state": [
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}},
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "invite"}},
            {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": template.history_visibility},
            },
        ],
    }
