"""Against a real Synapse: the module lets through only what Matrix clients need in clear.

Every variant below is something a client sends by default or an attacker would try. Each is
refused with an error that says what to do, and nothing of it reaches Synapse's database (each
carries a fresh marker that is then looked for in the database files). What clients genuinely
need still works: encrypted events, one-emoji reactions, plain redactions and removals, room
settings, an upgrade to a version that keeps the rules, profile changes, and the hub's own
accounts (server notices, the policy list, moderators' actions through the hub).
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3

import aiohttp
import pytest

from crossline import secrets as secret_files
from crossline.matrix.homeserver import Homeserver
from tests.conftest import issue_invitation, member_ids_on_page
from tests.contact_support import choose_who_may_invite
from tests.support import login, matrix, register_like_element, wait_for
from tests.test_e2e_cross_line_room import database_bytes

pytestmark = pytest.mark.synapse

CLIENT = "/_matrix/client/v3"
MEGOLM = "m.megolm.v1.aes-sha2"


def ciphertext(**extra) -> dict:
    """What an encrypting client sends: opaque to the server."""
    return {"algorithm": MEGOLM, "ciphertext": base64.b64encode(secrets.token_bytes(48)).decode().rstrip("="),
            "sender_key": "c2VuZGVyIGtleQ", "device_id": "ABCDEFGHIJ", "session_id": "c2Vzc2lvbg", **extra}


def new_marker() -> str:
    return f"allowlist{secrets.token_hex(8)}"


def tags(text: str) -> str:
    """Text spelled in invisible tag characters, as a subdivision flag spells its region."""
    return "".join(chr(0xE0000 + ord(char)) for char in text)


def in_synapse(world, text: str) -> bool:
    """Anywhere in Synapse's database files, its write-ahead log included: in clear, or spelled
    in tag characters (stored as UTF-8 or as JSON escapes)."""
    data = database_bytes(world.stack.data_dir / "synapse" / "homeserver.db")
    forms = (text, tags(text), json.dumps(tags(text))[1:-1])
    return any(form.encode() in data for form in forms)


def synapse_rows(world, sql: str, *args) -> list[tuple]:
    path = world.stack.data_dir / "synapse" / "homeserver.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def tokens(world) -> dict[str, str]:
    """Two members of their own, from opposite banks, so that the rooms made here count against
    nobody else's room-creation limit in this session's shared Synapse."""
    stack = world.stack
    admin = secret_files.read_secret(stack.data_dir / "secrets", secret_files.HUB_ADMIN_ACCESS_TOKEN)
    people = {"zoe": ("Left bank", "zoe password for allow-list"), "yara": ("Right bank", "yara password for allow-list")}
    tokens = {}
    for localpart, (side, password) in people.items():
        code = issue_invitation(world.admin, world.line_id, world.side_ids[side]).rsplit("/", 1)[1]
        status, data = register_like_element(stack.homeserver_url, localpart, password, code)
        assert status == 200, data
        user_id = stack.user_id(localpart)
        wait_for(lambda: user_id in member_ids_on_page(world.admin.get(f"/lines/{world.line_id}")[1]),
                 what=f"{localpart} to become a member")
        status, data = matrix(stack.synapse_socket, "POST", f"/_synapse/admin/v1/users/{user_id}/override_ratelimit",
                              admin, {"messages_per_second": 0, "burst_count": 0})
        assert status == 200, data
        tokens[localpart] = login(stack.homeserver_url, localpart, password)
    choose_who_may_invite(world, "yara", people["yara"][1], "line")  # Zoe invites her with no room in common
    return tokens


def new_room(world, tokens, body: dict | None = None) -> str:
    """A room Zoe creates (she has power 100 there, as a facilitator in hers) and Yara joins."""
    hs = world.stack.homeserver_url
    status, data = matrix(hs, "POST", f"{CLIENT}/createRoom", tokens["zoe"],
                          {"name": "allow-list", "invite": [world.stack.user_id("yara")], **(body or {})})
    assert status == 200, data
    status, joined = matrix(hs, "POST", f"{CLIENT}/join/{data['room_id']}", tokens["yara"], {})
    assert status == 200, joined
    return data["room_id"]


def send(world, token: str, room_id: str, event_type: str, content: dict) -> tuple[int, dict]:
    return matrix(world.stack.homeserver_url, "PUT",
                  f"{CLIENT}/rooms/{room_id}/send/{event_type}/{secrets.token_hex(6)}", token, content)


def put_state(world, token: str, room_id: str, event_type: str, state_key: str, content: dict) -> tuple[int, dict]:
    return matrix(world.stack.homeserver_url, "PUT", f"{CLIENT}/rooms/{room_id}/state/{event_type}/{state_key}",
                  token, content)


def room_state(world, token: str, room_id: str) -> dict[tuple[str, str], dict]:
    events = matrix(world.stack.homeserver_url, "GET", f"{CLIENT}/rooms/{room_id}/state", token)[1]
    return {(event["type"], event["state_key"]): event for event in events}


@pytest.fixture(scope="module")
def room(world, tokens) -> tuple[str, str]:
    """Zoe's room with Yara, and one encrypted message to react to or edit. Tests here only
    try things that are refused, so they leave it as it was."""
    room_id = new_room(world, tokens)
    status, data = send(world, tokens["zoe"], room_id, "m.room.encrypted", ciphertext())
    assert status == 200, data
    return room_id, data["event_id"]


def message_variants(m: str, target: str) -> dict[str, tuple[str, dict, str]]:
    """name -> (event type, content carrying the marker m, what the refusal says)."""
    unencrypted = "Unencrypted messages are refused"
    return {
        "plain message": ("m.room.message", {"msgtype": "m.text", "body": m}, unencrypted),
        "edit with m.new_content": ("m.room.message", {
            "msgtype": "m.text", "body": f"* {m}", "m.new_content": {"msgtype": "m.text", "body": m},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target}}, unencrypted),
        "sticker": ("m.sticker", {"body": m, "url": "mxc://crossline.test/sticker", "info": {}}, unencrypted),
        "unstable poll": ("org.matrix.msc3381.poll.start", {
            "org.matrix.msc3381.poll.start": {"question": {"org.matrix.msc1767.text": m}, "kind": "disclosed",
                                              "answers": [{"id": "a", "org.matrix.msc1767.text": "yes"}]},
            "org.matrix.msc1767.text": m}, unencrypted),
        "poll end": ("m.poll.end", {"m.text": [{"body": m}],
                                    "m.relates_to": {"rel_type": "m.reference", "event_id": target}}, unencrypted),
        "extensible message": ("m.message", {"m.text": [{"body": m}]}, unencrypted),
        "unstable extensible message": ("org.matrix.msc1767.message", {"org.matrix.msc1767.text": m}, unencrypted),
        "call invite": ("m.call.invite", {"call_id": "c1", "version": "1", "lifetime": 60000,
                                          "offer": {"type": "offer", "sdp": m}}, unencrypted),
        "custom type with a body": ("org.example.note", {"body": m}, unencrypted),
        "reaction with words": ("m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": target,
                                                                "key": f"meet at the bridge {m}"}}, "single emoji"),
        "reaction with words in tag characters": ("m.reaction", {"m.relates_to": {
            "rel_type": "m.annotation", "event_id": target, "key": "\U0001F3F4" + tags(m)}}, "single emoji"),
        "reaction with two emoji and a body": ("m.reaction", {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "👍"}, "body": m}, "single emoji"),
        "encrypted with clear text beside": ("m.room.encrypted", ciphertext(body=m), "not in the form"),
        "encrypted whose relation key is words": ("m.room.encrypted", ciphertext(**{"m.relates_to": {
            "rel_type": "m.annotation", "event_id": target, "key": m}}), "single emoji"),
        "encrypted with words for ciphertext": ("m.room.encrypted", {**ciphertext(), "ciphertext": f"hello {m}"},
                                                "not in the form"),
    }


MESSAGE_VARIANTS = list(message_variants("m", "$e"))


@pytest.mark.parametrize("variant", MESSAGE_VARIANTS)
def test_messages_in_clear_are_refused_and_not_stored(world, tokens, room, variant):
    room_id, target = room
    marker = new_marker()
    event_type, content, says = message_variants(marker, target)[variant]
    status, data = send(world, tokens["yara"], room_id, event_type, content)
    assert status == 403 and says in data["error"], data
    assert not in_synapse(world, marker)


def state_variants(m: str, server: str) -> dict[str, tuple[str, str, dict, str]]:
    """name -> (event type, state key, content carrying the marker m, what the refusal says)."""
    not_a_setting = "do not accept the room setting"
    return {
        "message as state": ("m.room.message", "", {"msgtype": "m.text", "body": m}, not_a_setting),
        "encrypted event as state": ("m.room.encrypted", "", ciphertext(session_id=m), not_a_setting),
        "custom state with a body": ("org.example.note", "", {"body": m}, not_a_setting),
        "room name under a state key": ("m.room.name", m, {"name": "neutral"}, not_a_setting),
        "topic with an extra field": ("m.room.topic", "", {"topic": "neutral", "note": m}, "cannot carry 'note'"),
        "address": ("m.room.canonical_alias", "", {"alias": f"#{m}:{server}"}, not_a_setting),
        "policy rule from a member": ("m.policy.rule.user", m, {"entity": f"@x:{server}", "recommendation": "m.ban",
                                                                "reason": m}, not_a_setting),
        "space child": ("m.space.child", f"!{m}:{server}", {"via": [m]}, not_a_setting),
        "group call membership": ("org.matrix.msc3401.call.member", f"@zoe:{server}",
                                  {"memberships": [{"call_id": m}]}, not_a_setting),
        "pinned words": ("m.room.pinned_events", "", {"pinned": [m]}, "Pinned messages"),
        "per-room display name": ("m.room.member", f"@zoe:{server}", {"membership": "join", "displayname": m},
                                  "own display name"),
        # Synapse refuses any picture first (max_avatar_size, allowed_avatar_mimetypes: issue 26).
        "per-room avatar": ("m.room.member", f"@zoe:{server}",
                            {"membership": "join", "avatar_url": f"mxc://{server}/{m}"}, "avatar is not allowed"),
        "tombstone with words": ("m.room.tombstone", "", {"body": m, "replacement_room": f"!x:{server}"},
                                 "room upgrade"),
        "world-readable history": ("m.room.history_visibility", "", {"history_visibility": "world_readable", "note": m},
                                   "never to people outside"),
    }


@pytest.mark.parametrize("variant", list(state_variants("m", "server")))
def test_state_outside_the_allow_list_is_refused_and_not_stored(world, tokens, room, variant):
    room_id, _ = room
    marker = new_marker()
    event_type, state_key, content, says = state_variants(marker, world.stack.server_name)[variant]
    status, data = put_state(world, tokens["zoe"], room_id, event_type, state_key, content)
    assert status == 403 and says in data["error"], data
    assert not in_synapse(world, marker)


@pytest.mark.parametrize("key", ["👍🏽", "\U0001F3F4" + tags("gbsct") + "\U000E007F"])
def test_a_one_emoji_reaction_is_accepted(world, tokens, room, key):
    room_id, target = room
    status, data = send(world, tokens["yara"], room_id, "m.reaction",
                        {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}})
    assert status == 200, data


def test_reasons_are_refused_and_removals_without_one_work(world, tokens):
    hs, zoe, yara = world.stack.homeserver_url, tokens["zoe"], tokens["yara"]
    yara_id = world.stack.user_id("yara")
    room_id = new_room(world, tokens)
    marker = new_marker()
    for path, token, body in (("leave", yara, {}), ("kick", zoe, {"user_id": yara_id}),
                              ("ban", zoe, {"user_id": yara_id})):
        status, data = matrix(hs, "POST", f"{CLIENT}/rooms/{room_id}/{path}", token, {**body, "reason": marker})
        assert status == 403 and "leave the reason empty" not in data["error"] and "reason" in data["error"], data
    assert room_state(world, zoe, room_id)[("m.room.member", yara_id)]["content"]["membership"] == "join"

    assert matrix(hs, "POST", f"{CLIENT}/rooms/{room_id}/kick", zoe, {"user_id": yara_id})[0] == 200
    assert room_state(world, zoe, room_id)[("m.room.member", yara_id)]["content"] == {"membership": "leave"}
    status, data = matrix(hs, "POST", f"{CLIENT}/rooms/{room_id}/invite", zoe, {"user_id": yara_id, "reason": marker})
    assert status == 403 and "reason" in data["error"], data
    assert matrix(hs, "POST", f"{CLIENT}/rooms/{room_id}/invite", zoe, {"user_id": yara_id})[0] == 200
    assert matrix(hs, "POST", f"{CLIENT}/join/{room_id}", yara, {})[0] == 200
    # A leave without a reason works (in a room of her own: leaving just after joining from Zoe's
    # invitation would count as declining it, and Zoe could not invite her for a week).
    own = matrix(hs, "POST", f"{CLIENT}/createRoom", yara, {})[1]["room_id"]
    assert matrix(hs, "POST", f"{CLIENT}/rooms/{own}/leave", yara, {})[0] == 200
    assert not in_synapse(world, marker)


def test_a_redaction_reason_is_refused_and_a_plain_redaction_works(world, tokens):
    hs, zoe = world.stack.homeserver_url, tokens["zoe"]
    room_id = new_room(world, tokens)
    event_id = send(world, tokens["yara"], room_id, "m.room.encrypted", ciphertext())[1]["event_id"]
    marker = new_marker()
    redact = f"{CLIENT}/rooms/{room_id}/redact/{event_id}"
    status, data = matrix(hs, "PUT", f"{redact}/{secrets.token_hex(4)}", zoe, {"reason": marker})
    assert status == 403 and "leave the reason empty" in data["error"], data
    assert "ciphertext" in matrix(hs, "GET", f"{CLIENT}/rooms/{room_id}/event/{event_id}", zoe)[1]["content"]
    assert matrix(hs, "PUT", f"{redact}/{secrets.token_hex(4)}", zoe, {})[0] == 200
    assert matrix(hs, "GET", f"{CLIENT}/rooms/{room_id}/event/{event_id}", zoe)[1]["content"] == {}
    assert not in_synapse(world, marker)


@pytest.mark.parametrize("event_type", ["m.room.create", "m.room.encryption", "m.room.join_rules",
                                        "m.room.history_visibility", "m.room.guest_access", "m.room.power_levels"])
def test_the_rooms_protections_cannot_be_redacted(world, tokens, event_type):
    hs, zoe = world.stack.homeserver_url, tokens["zoe"]
    room_id = new_room(world, tokens)
    before = room_state(world, zoe, room_id)[(event_type, "")]
    status, data = matrix(hs, "PUT", f"{CLIENT}/rooms/{room_id}/redact/{before['event_id']}/{secrets.token_hex(4)}",
                          zoe, {})
    assert status == 403 and "cannot be removed" in data["error"], data
    assert room_state(world, zoe, room_id)[(event_type, "")]["content"] == before["content"]


@pytest.mark.parametrize("version", ["1", "6", "10"])
def test_rooms_of_older_versions_are_neither_created_nor_upgraded_to(world, tokens, version):
    hs, zoe = world.stack.homeserver_url, tokens["zoe"]
    status, data = matrix(hs, "POST", f"{CLIENT}/createRoom", zoe, {"room_version": version})
    assert status == 403 and "room version" in data["error"], data
    room_id = new_room(world, tokens)
    status, data = matrix(hs, "POST", f"{CLIENT}/rooms/{room_id}/upgrade", zoe, {"new_version": version})
    assert status == 403 and "room version" in data["error"], data
    assert ("m.room.tombstone", "") not in room_state(world, zoe, room_id)
    assert synapse_rows(world, "select count(*) from events join rooms using (room_id) where rooms.room_version = ?",
                        version) == [(0,)]


def test_an_upgrade_to_a_version_that_keeps_the_rules_works(world, tokens):
    hs, zoe = world.stack.homeserver_url, tokens["zoe"]
    room_id = new_room(world, tokens, {"topic": "Water and bridges"})
    status, data = matrix(hs, "POST", f"{CLIENT}/rooms/{room_id}/upgrade", zoe, {"new_version": "11"})
    assert status == 200, data
    state = room_state(world, zoe, data["replacement_room"])
    assert state[("m.room.encryption", "")]["content"]["algorithm"] == MEGOLM
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "invite"}
    assert state[("m.room.guest_access", "")]["content"] == {"guest_access": "forbidden"}
    tombstone = room_state(world, zoe, room_id)[("m.room.tombstone", "")]["content"]
    assert tombstone["replacement_room"] == data["replacement_room"]


def test_room_addresses_are_refused(world, tokens):
    hs, zoe = world.stack.homeserver_url, tokens["zoe"]
    marker = new_marker()
    status, data = matrix(hs, "POST", f"{CLIENT}/createRoom", zoe, {"room_alias_name": marker})
    assert status == 403 and "Room addresses" in data["error"], data
    room_id = new_room(world, tokens)
    status, data = matrix(hs, "PUT", f"{CLIENT}/directory/room/%23{marker}:{world.stack.server_name}", zoe,
                          {"room_id": room_id})
    assert status == 403 and "Room addresses" in data["error"], data
    assert not in_synapse(world, marker)


def test_a_profile_change_reaches_every_room(world, tokens):
    """Synapse copies the new global name into each room: that is the name the rule allows."""
    hs, yara = world.stack.homeserver_url, tokens["yara"]
    yara_id = world.stack.user_id("yara")
    room_id = new_room(world, tokens)
    profile = f"{CLIENT}/profile/{yara_id}/displayname"
    before = matrix(hs, "GET", profile, yara)[1].get("displayname")
    name = f"Yara {secrets.token_hex(3)}"
    try:
        assert matrix(hs, "PUT", profile, yara, {"displayname": name})[0] == 200
        wait_for(lambda: room_state(world, yara, room_id)[("m.room.member", yara_id)]["content"].get("displayname")
                 == name, what="Synapse to copy the new name into the room")
        # A client re-sending her own member event with her global name is fine.
        status, data = put_state(world, yara, room_id, "m.room.member", yara_id,
                                 {"membership": "join", "displayname": name})
        assert status == 200, data
    finally:
        matrix(hs, "PUT", profile, yara, {"displayname": before or ""})


async def test_the_hubs_own_accounts_keep_working_and_publish_no_reason(world, tokens):
    stack = world.stack
    hs = stack.homeserver_url
    admin = secret_files.read_secret(stack.data_dir / "secrets", secret_files.HUB_ADMIN_ACCESS_TOKEN)
    # Server notices (Synapse's notices account, in clear by Synapse's design).
    status, data = matrix(stack.synapse_socket, "POST", "/_synapse/admin/v1/send_server_notice", admin,
                          {"user_id": stack.user_id("yara"), "content": {"msgtype": "m.text", "body": "A notice"}})
    assert status == 200, data
    # The hub's admin account keeps its policy list (Draupnir/Mjolnir follow it).
    status, data = matrix(hs, "POST", f"{CLIENT}/createRoom", admin, {"name": "policy list", "preset": "private_chat"})
    assert status == 200, data
    status, rule = put_state(world, admin, data["room_id"], "m.policy.rule.user", "crossline-case-0",
                             {"entity": stack.user_id("nobody"), "recommendation": "m.ban",
                              "reason": "Crossline moderation, case 0"})
    assert status == 200, rule
    # Moderators' actions through the hub (which sends no reason: it stays sealed in the hub) are done.
    room_id = new_room(world, tokens)
    event_id = send(world, tokens["yara"], room_id, "m.room.encrypted", ciphertext())[1]["event_id"]
    async with aiohttp.ClientSession() as session:
        homeserver = Homeserver(hs, session, admin)
        await homeserver.redact(tokens["zoe"], room_id, event_id, secrets.token_hex(4))
        await homeserver.remove_from_room(tokens["zoe"], room_id, stack.user_id("yara"), ban=True)
    state = room_state(world, tokens["zoe"], room_id)
    assert state[("m.room.member", stack.user_id("yara"))]["content"] == {"membership": "ban"}
    assert matrix(hs, "GET", f"{CLIENT}/rooms/{room_id}/event/{event_id}", tokens["zoe"])[1]["content"] == {}
