"""The pure policy core: enforcement rules and room templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossline_policies import enforcement
from crossline_policies.rooms import (
    Invitee,
    RoomTemplateError,
    build_create_room_request,
    builtin_templates_dir,
    load_room_template,
    load_room_templates,
)

BOT = "@crossline:hub.test"


@pytest.mark.parametrize(
    "request_body, refused",
    [
        ({}, False),
        ({"preset": "private_chat", "visibility": "private"}, False),
        ({"preset": "trusted_private_chat"}, False),
        ({"preset": "public_chat"}, True),
        ({"visibility": "public"}, True),
        ({"initial_state": [{"type": "m.room.encryption", "content": {"algorithm": "m.olm.v1"}}]}, True),
        ({"initial_state": [{"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}]}, True),
        ({"initial_state": [{"type": "m.room.guest_access", "content": {"guest_access": "can_join"}}]}, True),
        ({"initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}]}, True),
    ],
)
def test_create_room_rules(request_body, refused):
    assert (enforcement.check_create_room(request_body) is not None) == refused


@pytest.mark.parametrize(
    "event_type, is_state, sender, refused",
    [
        ("m.room.message", False, "@a:hub.test", True),
        ("m.sticker", False, "@a:hub.test", True),
        ("m.room.encrypted", False, "@a:hub.test", False),
        ("m.room.message", True, "@a:hub.test", False),
        ("m.room.message", False, "@crossline-notices:hub.test", False),
    ],
)
def test_event_rules(event_type, is_state, sender, refused):
    result = enforcement.check_event(event_type, sender, is_state, {"@crossline-notices:hub.test"})
    assert (result is not None) == refused


def test_invite_rules_need_both_sides_known():
    known = {"@a:hub.test", "@b:hub.test"}
    assert enforcement.check_invite("@a:hub.test", "@b:hub.test", known) is None
    assert "@x:hub.test is not a member" in enforcement.check_invite("@a:hub.test", "@x:hub.test", known)
    assert "Only members" in enforcement.check_invite("@x:hub.test", "@a:hub.test", known)


def test_builtin_templates_load_and_say_what_they_are():
    templates = load_room_templates()
    assert set(templates) >= {"cross-line-dialogue", "consultation", "negotiators", "moderation"}
    assert templates["cross-line-dialogue"].hub_bot_member is False
    assert templates["consultation"].hub_bot_member is True
    assert "bot" in templates["consultation"].topic_note


def test_cross_line_request_is_encrypted_invite_only_without_the_bot():
    template = load_room_templates()["cross-line-dialogue"]
    body = build_create_room_request(
        template, "Dialogue", "", "@fac:hub.test",
        [Invitee("@a:hub.test", frozenset({"participant"})), Invitee("@m:hub.test", frozenset({"moderator"}))], BOT,
    )
    state = {event["type"]: event["content"] for event in body["initial_state"]}
    assert state["m.room.encryption"]["algorithm"] == enforcement.MEGOLM
    assert state["m.room.join_rules"]["join_rule"] == "invite"
    assert state["m.room.history_visibility"]["history_visibility"] == "joined"
    assert BOT not in body["invite"] and BOT not in body["power_level_content_override"]["users"]
    users = body["power_level_content_override"]["users"]
    assert users == {"@fac:hub.test": 100, "@a:hub.test": 0, "@m:hub.test": 50}
    assert enforcement.check_create_room(body) is None


def test_consultation_request_invites_the_bot_and_says_so():
    template = load_room_templates()["consultation"]
    body = build_create_room_request(template, "Consult", "Water", "@fac:hub.test", [], BOT)
    assert body["invite"] == [BOT]
    assert body["topic"].startswith("Water — ") and "bot" in body["topic"]


def write_template(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    return path


def valid_text() -> str:
    return (builtin_templates_dir() / "cross-line-dialogue.toml").read_text()


@pytest.mark.parametrize(
    "mutate, says",
    [
        (lambda t: "colour = 'red'\n" + t, "unknown key 'colour'"),
        (lambda t: t.replace("hub_bot_member = false", "hub_bot_member = 'no'"), "'hub_bot_member' must be a bool"),
        (lambda t: t.replace('history_visibility = "joined"', 'history_visibility = "world_readable"'), "'history_visibility' must be one of"),
        (lambda t: t.replace("kick = 50", "kick = 500"), "'actions.kick' must be a number from 0 to 100"),
        (lambda t: t.replace("kick = 50", "kik = 50"), "unknown key 'actions.kik'"),
        (lambda t: t.replace("facilitator = 50\n", ""), "missing key 'power_levels.facilitator'"),
        (lambda t: t.replace("[power_levels]", "[power_levels\n"), "not valid TOML"),
    ],
)
def test_template_errors_name_the_file_and_key(tmp_path, mutate, says):
    path = write_template(tmp_path, mutate(valid_text()))
    with pytest.raises(RoomTemplateError) as error:
        load_room_template(path)
    assert str(path) in str(error.value) and says in str(error.value)


def test_a_template_folder_missing_a_required_template_is_refused(tmp_path):
    write_template(tmp_path, valid_text())
    with pytest.raises(RoomTemplateError, match="missing room templates: cross-line-dialogue"):
        load_room_templates(tmp_path)
