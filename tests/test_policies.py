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
        ({"room_version": "11"}, False),
        ({"room_version": "1"}, True),
        ({"room_version": "10"}, True),
        ({"creation_content": {"type": "m.space"}}, True),
        ({"creation_content": {"m.federate": False}}, False),
        ({"room_alias_name": "secret-meeting"}, True),
        ({"invite_3pid": [{"medium": "email", "address": "a@b.c"}]}, True),
        ({"name": "x" * 256}, True),
        ({"topic": "x" * 1001}, True),
        ({"power_level_content_override": {"users": {"not a user": 100}}}, True),
        ({"initial_state": [{"type": "m.room.message", "content": {"body": "hi"}}]}, True),
        ({"initial_state": [{"type": "m.room.name", "state_key": "hidden words", "content": {"name": "x"}}]}, True),
    ],
)
def test_create_room_rules(request_body, refused):
    assert (enforcement.check_create_room(request_body) is not None) == refused


ENCRYPTED = {"algorithm": enforcement.MEGOLM, "ciphertext": "AwgAEnB0b3Rvbi8rPQ", "sender_key": "k3y+/",
             "device_id": "ABCDEFGHIJ", "session_id": "s3ss10n"}
ME = enforcement.Profile("Alice", "mxc://hub.test/alice")


def reaction(key, **extra):
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$target", "key": key, **extra}}


def message(event_type, content, **facts):
    return enforcement.RoomEvent(event_type, content, None, **facts)


def state(event_type, content, state_key="", **facts):
    return enforcement.RoomEvent(event_type, content, state_key, **facts)


# Each row is something a client or an attacker could send; the rules allow only what a Matrix
# client needs in clear.
@pytest.mark.parametrize(
    "event, says",
    [
        # Messages: ciphertext only.
        (message("m.room.encrypted", ENCRYPTED), None),
        (message("m.room.encrypted", {**ENCRYPTED, "m.relates_to": {"rel_type": "m.thread", "event_id": "$root",
                                                                    "is_falling_back": True,
                                                                    "m.in_reply_to": {"event_id": "$r"}}}), None),
        (message("m.room.encrypted", {**ENCRYPTED, "m.relates_to": {"rel_type": "m.replace", "event_id": "$e"}}), None),
        (message("m.room.encrypted", {**ENCRYPTED, "body": "hello"}), "not in the form"),
        (message("m.room.encrypted", {**ENCRYPTED, "ciphertext": "meet me at the bridge"}), "not in the form"),
        (message("m.room.encrypted", {**ENCRYPTED, "algorithm": "m.olm.v1.curve25519-aes-sha2"}), "not in the form"),
        (message("m.room.encrypted", {**ENCRYPTED, "device_id": "a device name"}), "not in the form"),
        (message("m.room.encrypted", {**ENCRYPTED, "m.relates_to": {"rel_type": "m.annotation", "event_id": "$e",
                                                                    "key": "secret words"}}), "single emoji"),
        (message("m.room.encrypted", {**ENCRYPTED, "m.relates_to": {"rel_type": "m.replace", "event_id": "$e",
                                                                    "m.new_content": {"body": "x"}}}), "not in the form"),
        (message("m.room.message", {"msgtype": "m.text", "body": "hi"}), "Unencrypted messages are refused"),
        (message("m.room.message", {"msgtype": "m.text", "body": "* hi", "m.new_content": {"body": "hi"},
                                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$e"}}), "Unencrypted messages are refused"),
        (message("m.sticker", {"body": "cat", "url": "mxc://x/y"}), "Unencrypted messages are refused"),
        (message("m.message", {"m.text": [{"body": "hi"}]}), "Unencrypted messages are refused"),
        (message("org.matrix.msc1767.message", {"org.matrix.msc1767.text": "hi"}), "Unencrypted messages are refused"),
        (message("org.matrix.msc3381.poll.start", {"org.matrix.msc3381.poll.start": {"question": {}}}), "Unencrypted messages are refused"),
        (message("m.poll.end", {"m.text": [{"body": "The poll has ended"}]}), "Unencrypted messages are refused"),
        (message("m.call.invite", {"call_id": "1", "offer": {"sdp": "v=0"}}), "Unencrypted messages are refused"),
        (message("com.example.note", {"body": "custom"}), "Unencrypted messages are refused"),
        (message("m.room.member", {"membership": "join"}), "Unencrypted messages are refused"),
        # Reactions: one emoji, nothing else.
        (message("m.reaction", reaction("👍")), None),
        (message("m.reaction", reaction("👍🏽")), None),
        (message("m.reaction", reaction("🇺🇦")), None),
        (message("m.reaction", reaction("👨‍👩‍👧‍👦")), None),
        (message("m.reaction", reaction("meet at the bridge at five")), "single emoji"),
        (message("m.reaction", reaction("🏴" + "".join(chr(0xE0000 + ord(c)) for c in "meet at north gate 5pm"))),
         "single emoji"),
        (message("m.reaction", reaction("🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f")), None),
        (message("m.reaction", reaction("👍👍")), "single emoji"),
        (message("m.reaction", reaction("👍 yes")), "single emoji"),
        (message("m.reaction", reaction("")), "single emoji"),
        (message("m.reaction", {**reaction("👍"), "body": "hello"}), "single emoji"),
        (message("m.reaction", reaction("👍", note="x")), "single emoji"),
        (message("m.reaction", {"m.relates_to": {"rel_type": "m.reference", "event_id": "$e", "key": "👍"}}),
         "single emoji"),
        # Redactions: no reason, not the room's protections.
        (message("m.room.redaction", {"redacts": "$e"}), None),
        (message("m.room.redaction", {"redacts": "$e"}, redacts_state="m.room.topic"), None),
        (message("m.room.redaction", {"redacts": "$e", "reason": "spam"}), "leave the reason empty"),
        (message("m.room.redaction", {"redacts": "$e", "note": "x"}), "plain removal"),
        *[(message("m.room.redaction", {"redacts": "$e"}, redacts_state=protected), "cannot be removed")
          for protected in sorted(enforcement.PROTECTED_STATE)],
        # State: the settings a room needs, content checked, nothing else.
        (state("m.room.name", {"name": "Left and right bank"}), None),
        (state("m.room.name", {"name": "x" * 256}), "at most 255"),
        (state("m.room.name", {"name": "x", "note": "hidden"}), "cannot carry 'note'"),
        (state("m.room.name", {"name": "x"}, state_key="a secret"), "do not accept the room setting"),
        (state("m.room.topic", {"topic": "Water", "m.topic": {"m.text": [{"body": "Water"},
                                                                       {"body": "<b>Water</b>", "mimetype": "text/html"}]}}), None),
        (state("m.room.topic", {"topic": "Water", "m.topic": [{"body": "Water", "mimetype": "text/plain"}]}), None),
        (state("m.room.topic", {"topic": "x" * 1001}), "at most 1000"),
        (state("m.room.topic", {"topic": "x", "m.topic": {"m.text": [{"body": "x", "mimetype": "image/png"}]}}),
         "plain text"),
        # Room pictures would be clear media anyone could fetch: only removing one is accepted.
        (state("m.room.avatar", {"url": "mxc://hub.test/abc", "info": {"mimetype": "image/png", "size": 10, "w": 1,
                                                                       "h": 1, "xyz.amorgan.blurhash": "LEHV6n"}}),
         "Pictures for profiles and rooms are not available"),
        (state("m.room.avatar", {"url": "https://example.org/x.png"}), "not available"),
        (state("m.room.avatar", {"info": {"thumbnail_url": "mxc://hub.test/t"}}), "not available"),
        (state("m.room.avatar", {}), None),
        (state("m.room.avatar", {"info": {"caption": "secret"}}), "uploaded image"),
        (state("m.room.pinned_events", {"pinned": ["$a", "$b"]}), None),
        (state("m.room.pinned_events", {"pinned": ["meet at five"]}), "Pinned messages"),
        (state("m.room.encryption", {"algorithm": enforcement.MEGOLM, "rotation_period_ms": 604800000}), None),
        (state("m.room.encryption", {"algorithm": "m.olm.v1"}), "end-to-end encrypted"),
        (state("m.room.encryption", {"algorithm": enforcement.MEGOLM, "note": "x"}), "end-to-end encrypted"),
        (state("m.room.join_rules", {"join_rule": "invite"}), None),
        (state("m.room.join_rules", {"join_rule": "knock"}), "invite-only"),
        (state("m.room.join_rules", {"join_rule": "invite", "allow": []}), "invite-only"),
        (state("m.room.history_visibility", {"history_visibility": "shared"}), None),
        (state("m.room.history_visibility", {"history_visibility": "world_readable"}), "never to people outside"),
        (state("m.room.guest_access", {"guest_access": "forbidden"}), None),
        (state("m.room.guest_access", {"guest_access": "can_join"}), "Guests"),
        (state("m.room.power_levels", {"users": {"@a:hub.test": 100}, "users_default": 0, "events": {"m.room.name": 50},
                                       "notifications": {"room": 50}, "historical": 100}), None),
        (state("m.room.power_levels", {"users": {"meet me at five": 100}}), "may name only"),
        (state("m.room.power_levels", {"kick": "50"}), "whole number"),
        (state("m.room.power_levels", {"motto": 1}), "cannot carry 'motto'"),
        (state("m.room.create", {"room_version": "11"}), None),
        (state("m.room.create", {"room_version": "11", "predecessor": {"room_id": "!old:hub.test", "event_id": "$t"}}),
         None),
        (state("m.room.create", {"room_version": "12", "additional_creators": ["@b:hub.test"]}), None),
        *[(state("m.room.create", {"room_version": version}), "version") for version in ("1", "6", "10", "org.x")],
        (state("m.room.create", {"room_version": "11", "type": "m.space"}), "Spaces"),
        (state("m.room.create", {"room_version": "11", "motto": "x"}), "cannot carry 'motto'"),
        (state("m.room.tombstone", {"body": enforcement.TOMBSTONE_BODY, "replacement_room": "!new:hub.test"}), None),
        (state("m.room.tombstone", {"body": "We moved: meet at the bridge", "replacement_room": "!new:hub.test"}),
         "room upgrade"),
        (state("m.room.message", {"msgtype": "m.text", "body": "hi"}), "do not accept the room setting"),
        (state("m.room.encrypted", ENCRYPTED), "do not accept the room setting"),
        (state("m.room.server_acl", {"allow": ["*"]}), "do not accept the room setting"),
        (state("m.room.canonical_alias", {"alias": "#secret:hub.test"}), "do not accept the room setting"),
        (state("m.room.third_party_invite", {"display_name": "x"}, state_key="t"), "do not accept the room setting"),
        (state("m.space.child", {"via": ["hub.test"]}, state_key="!r:hub.test"), "do not accept the room setting"),
        (state("org.matrix.msc3401.call.member", {"memberships": []}, state_key="@a:hub.test"),
         "do not accept the room setting"),
        (state("com.example.note", {"body": "custom"}), "do not accept the room setting"),
        # Policy rules: only the hub's admin account publishes them.
        (state("m.policy.rule.user", {"entity": "@x:hub.test", "recommendation": "m.ban", "reason": "case 4"},
               state_key="case-4", sender_is_hub_admin=True), None),
        (state("m.policy.rule.user", {"entity": "@x:hub.test", "recommendation": "m.ban", "reason": "hello"},
               state_key="case-4"), "do not accept the room setting"),
        # Members: the account's own global name and picture, no reason.
        (state("m.room.member", {"membership": "join", "displayname": "Alice", "avatar_url": "mxc://hub.test/alice"},
               "@alice:hub.test", profile=ME), None),
        (state("m.room.member", {"membership": "join"}, "@alice:hub.test", profile=ME), None),
        (state("m.room.member", {"membership": "invite", "is_direct": True}, "@bella:hub.test"), None),
        (state("m.room.member", {"membership": "leave"}, "@bella:hub.test"), None),
        (state("m.room.member", {"membership": "join", "displayname": "Bella (moderator)"}, "@alice:hub.test",
               profile=ME), "own display name"),
        (state("m.room.member", {"membership": "join", "displayname": "Alice", "avatar_url": "mxc://x/other"},
               "@alice:hub.test", profile=ME), "own display name"),
        (state("m.room.member", {"membership": "invite", "displayname": "Anyone"}, "@bella:hub.test"), "own display name"),
        (state("m.room.member", {"membership": "leave", "reason": "he is a traitor"}, "@bella:hub.test"), "reason"),
        (state("m.room.member", {"membership": "ban", "reason": "x"}, "@bella:hub.test"), "reason"),
        (state("m.room.member", {"membership": "invite", "reason": "come"}, "@bella:hub.test"), "reason"),
        (state("m.room.member", {"membership": "knock"}, "@alice:hub.test", profile=ME), "invitation only"),
        (state("m.room.member", {"membership": "join", "note": "x"}, "@alice:hub.test", profile=ME), "name and picture only"),
    ],
)
def test_only_what_clients_need_is_stored_in_clear(event, says):
    refusal = enforcement.check_event(event)
    if says is None:
        assert refusal is None
    else:
        assert refusal is not None and says in refusal


def tags(text: str) -> str:
    """Text spelled in invisible tag characters, as a subdivision flag spells its region."""
    return "".join(chr(0xE0000 + ord(char)) for char in text)


CANCEL_TAG = "\U000e007f"


@pytest.mark.parametrize("text", ["👍", "❤️", "🇺🇦", "1️⃣", "#️⃣", "🏳️‍🌈", "🏴‍☠️", "👩🏻‍❤️‍💋‍👨🏼", "🏴",
                                  "🏴" + tags("gbeng") + CANCEL_TAG, "🏴" + tags("gbsct") + CANCEL_TAG,
                                  "🏴" + tags("gbwls") + CANCEL_TAG])
def test_single_emoji(text):
    assert enforcement.is_single_emoji(text)


@pytest.mark.parametrize("text", [
    "", "ok", "1", "👍👍", "🇺🇦🇺🇦", "😀x", "👍 ", "‍👍", "👍‍", "😀‍😀‍😀‍😀‍😀", 5, None,
    # Tag characters carry text invisibly: only the subdivision-flag form is an emoji.
    "🏴" + tags("meet at north gate 5pm"), "🏴" + tags("meet at north gate 5pm") + CANCEL_TAG,
    "🏴" + tags("meet5") + CANCEL_TAG, "🏴" + tags("gate") + CANCEL_TAG, "🏴" + tags("gb eng") + CANCEL_TAG,
    "🏴" + tags("GBENG") + CANCEL_TAG,
    "🏴" + tags("gbeng"), "🏴" + tags("gbengland") + CANCEL_TAG, "🏴" + tags("g") + CANCEL_TAG,
    "🏴" + CANCEL_TAG, "🏴" + tags("gbeng") + CANCEL_TAG + tags("x"), "🏴" + tags("gbeng") + CANCEL_TAG + CANCEL_TAG,
    "🏴" + tags("gbeng") + CANCEL_TAG + "\ufe0f", "🏴" + tags("gbeng") + CANCEL_TAG + "‍🏴",
    "🏴" + tags("gbeng") + CANCEL_TAG + "🏴" + tags("gbsct") + CANCEL_TAG,
    "👍" + tags("gbeng") + CANCEL_TAG, "🏳" + tags("gbeng") + CANCEL_TAG, "😀" + tags("hi"), "👍" + CANCEL_TAG,
    "🏳️‍🌈" + tags("hi") + CANCEL_TAG,
])
def test_not_single_emoji(text):
    assert not enforcement.is_single_emoji(text)


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


@pytest.mark.parametrize("template_name", sorted(load_room_templates()))
def test_every_template_request_passes_the_rules_at_the_hubs_own_limits(template_name):
    # The hub allows room names of 200 characters and topics of 500 before the template's note.
    body = build_create_room_request(load_room_templates()[template_name], "N" * 200, "T" * 500, "@fac:hub.test",
                                     [Invitee("@a:hub.test", frozenset({"participant"}))], BOT)
    assert enforcement.check_create_room(body) is None


def test_the_hubs_policy_room_request_passes():
    assert enforcement.check_create_room({"name": "Crossline moderation policy list", "preset": "private_chat",
                                          "topic": "Bans decided by Crossline's moderators."}) is None


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


ELEMENT_STATE = [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": enforcement.MEGOLM}},
                 {"type": "m.room.history_visibility", "content": {"history_visibility": "shared"}},
                 {"type": "m.room.guest_access", "content": {"guest_access": "forbidden"}}]


def test_what_a_new_room_or_a_topic_carries_is_bounded(monkeypatch):
    """Every topic text is checked against every protected name in Synapse's reactor: a topic has at
    most two forms, each distinct text is checked once, and a new room starts with a few settings, each once."""
    assert enforcement.check_create_room({"preset": "private_chat", "initial_state": ELEMENT_STATE}) is None
    topic = {"topic": "Bus times", "m.topic": {"m.text": [{"body": "Bus times"}, {"body": "<b>Bus times</b>",
                                                                            "mimetype": "text/html"}]}}
    assert enforcement.check_event(enforcement.RoomEvent("m.room.topic", topic, "")) is None
    three = {"topic": "x", "m.topic": {"m.text": [{"body": "x"}] * 3}}
    assert "at most 2 forms" in enforcement.check_event(enforcement.RoomEvent("m.room.topic", three, ""))
    many = [{"type": "m.room.topic", "state_key": "", "content": {"topic": f"t{i}"}} for i in range(11)]
    assert "at most 10 settings" in enforcement.check_create_room({"initial_state": many})
    twice = [*ELEMENT_STATE, {"type": "m.room.topic", "content": {"topic": "a"}},
             {"type": "m.room.topic", "state_key": "", "content": {"topic": "b"}}]
    assert "each setting once" in enforcement.check_create_room({"initial_state": twice})
    checked: list[str] = []
    monkeypatch.setattr(enforcement.names, "check_name", lambda text, *args: checked.append(text))
    enforcement.check_event(enforcement.RoomEvent("m.room.topic", {**topic, "m.topic": {"m.text": [{"body": "Bus times"}]}},
                                                  "", protected=enforcement.names.Protected(), sender="@eve:hub"))
    assert checked == ["Bus times"]
