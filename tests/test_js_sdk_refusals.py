"""The hub's refusals as Element's users meet them: each action is sent by matrix-js-sdk (the SDK
Element is built on, tests/js/attempt.mjs) to the gateway's client URL, as Element would send it.
Each refusal must reach the SDK as a Matrix error with a code and a message that says what happened;
each legitimate action next to it must still work."""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from crossline import secrets as secret_files
from tests.conftest import create_room
from tests.contact_support import share_a_room
from tests.support import matrix
from tests.test_e2e_contact import NOT_NOW, ararat, _person  # noqa: F401 - the fixture
from tests.test_e2e_gateway import _new_member
from tests.test_e2e_impersonation import CONSULTATION_NOTE, HUB_ROOM, STAFF_NAME, staff  # noqa: F401 - the fixture
from tests.test_e2e_refusals import _register_outsider

pytestmark = pytest.mark.synapse

JS = Path(__file__).parent / "js"
CLIENT = "/_matrix/client/v3"


@dataclass
class Member:
    user_id: str
    token: str


def attempt(world, who: Member, action: str, **fields) -> dict:
    """`action` sent by matrix-js-sdk as `who`; its outcome, as the SDK reported it."""
    node = shutil.which("node")
    assert node, "Node is missing: ops/test installs Debian's nodejs and npm"
    assert (JS / "node_modules" / "matrix-js-sdk").is_dir(), "matrix-js-sdk is missing: ops/test runs npm ci in tests/js"
    request = {"base_url": world.stack.homeserver_url, "user_id": who.user_id, "access_token": who.token,
               "action": action, **fields}
    # The token goes on stdin: a command line is visible to every local user.
    result = subprocess.run([node, str(JS / "attempt.mjs")], input=json.dumps(request), capture_output=True,
                            text=True, timeout=120, cwd=JS)
    assert result.returncode == 0 and result.stdout.count("\n") == 1, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def assert_refused(outcome: dict, says: str, status: int = 403) -> None:
    """Refused as a Matrix error the SDK understood: M_FORBIDDEN, and a message for the person."""
    assert outcome["ok"] is False, outcome
    assert outcome["errcode"] == "M_FORBIDDEN" and outcome["status"] == status, outcome
    assert says in outcome["error"] and len(outcome["error"]) > 20, outcome


def assert_ok(outcome: dict) -> dict:
    assert outcome["ok"] is True, outcome
    return outcome["result"]


def _fresh(world, prefix: str) -> Member:
    localpart = f"{prefix}{secrets.token_hex(3)}"
    return Member(world.stack.user_id(localpart), _new_member(world, localpart, f"{localpart} password 1"))


@pytest.fixture(scope="module")
def jo(world) -> Member:
    """A member of the Nistru line's left bank who uses Element."""
    return _fresh(world, "jo")


@pytest.fixture(scope="module")
def kim(world, jo) -> Member:
    """Another left-bank member, who shares a room the facilitator made with Jo."""
    kim = _fresh(world, "kim")
    share_a_room(world, {jo.user_id: jo.token, kim.user_id: kim.token})
    return kim


@pytest.fixture(scope="module")
def jos_room(world, jo) -> str:
    """A room Jo made in Element with an ordinary name (the legitimate action)."""
    result = assert_ok(attempt(world, jo, "create_room", options={"name": "Tea on Sunday"}))
    return result["room_id"]


def test_a_member_creates_a_room_with_an_ordinary_name(world, jo, jos_room):
    hs = world.stack.homeserver_url
    state = matrix(hs, "GET", f"{CLIENT}/rooms/{jos_room}/state", jo.token)[1]
    by_type = {event["type"]: event["content"] for event in state}
    assert by_type["m.room.name"]["name"] == "Tea on Sunday"
    assert by_type["m.room.join_rules"]["join_rule"] == "invite"


@pytest.mark.parametrize(
    "options, says",
    [
        ({"name": "Open to all", "visibility": "public"}, "public room directory"),
        ({"name": "Open to all", "preset": "public_chat"}, "invite-only"),
        ({"name": "In clear", "initial_state": [
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "none"}}]},
         "must be end-to-end encrypted"),
    ],
)
def test_a_public_or_unencrypted_room_is_refused(world, jo, options, says):
    assert_refused(attempt(world, jo, "create_room", options=options), says)


def test_publishing_a_room_to_the_directory_is_refused(world, jo, jos_room):
    assert_refused(attempt(world, jo, "set_directory_visibility", room_id=jos_room, visibility="public"),
                   "cannot be published")


def test_inviting_an_account_the_hub_does_not_know_is_refused(world, jo, jos_room):
    stack = world.stack
    shared = secret_files.read_secret(stack.data_dir / "secrets", secret_files.REGISTRATION_SHARED_SECRET)
    localpart = f"outsider{secrets.token_hex(3)}"
    outsider = _register_outsider(stack.synapse_socket, shared, localpart, f"{localpart} password 1")
    assert_refused(attempt(world, jo, "invite", room_id=jos_room, user_id=outsider),
                   "not a member of this Crossline hub")


def test_a_member_invites_someone_she_shares_a_room_with(world, jo, kim):
    room_id = assert_ok(attempt(world, jo, "create_room", options={"name": "Kim and me"}))["room_id"]
    assert_ok(attempt(world, jo, "invite", room_id=room_id, user_id=kim.user_id))
    assert assert_ok(attempt(world, kim, "join", room_id=room_id)) == {"room_id": room_id}


# -- Names (issue 26 item 1) ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "says"), [
    (STAFF_NAME, "the name of a staff member"),
    ("Nаtalia Cojocaru", "two alphabets"),  # Cyrillic а
    ("Natalia\u200bCojocaru", "U+200B"),
    ("\u202eNatalia Cojocaru", "U+202E"),
    ("Moderator", "'moderator'"),
    ("Crossline notices", "'crossline'"),
])
def test_a_display_name_cannot_pass_as_staff(world, staff, jo, name, says):  # noqa: F811
    assert_refused(attempt(world, jo, "set_display_name", name=name), says)
    assert _display_name(world, jo) != name, "refused, yet stored and shown to others"


def _display_name(world, member: Member) -> str | None:
    path = f"{CLIENT}/profile/{member.user_id}/displayname"
    return matrix(world.stack.homeserver_url, "GET", path, member.token)[1].get("displayname")


def test_the_bots_name_is_refused(world, staff, jo):  # noqa: F811
    bot = world.stack.user_id("crossline-bot")
    bot_name = matrix(world.stack.homeserver_url, "GET", f"{CLIENT}/profile/{bot}/displayname", staff)[1] \
        .get("displayname") or "crossline-bot"
    assert_refused(attempt(world, jo, "set_display_name", name=bot_name), "Your display name")


def test_a_member_renames_herself(world, jo):
    assert_ok(attempt(world, jo, "set_display_name", name="Jo Rusu"))
    assert _display_name(world, jo) == "Jo Rusu"


def test_a_per_room_name_cannot_pass_as_staff(world, staff, jo, jos_room):  # noqa: F811
    for name in (STAFF_NAME, "Moderator"):
        assert_refused(attempt(world, jo, "set_room_member", room_id=jos_room, content={"displayname": name}),
                       "each account's own display name")


# -- Rooms members create and their addresses (issue 26 item 2) ------------------------------------


@pytest.fixture(scope="module")
def hub_room(world, staff) -> str:  # noqa: F811
    status, page, room_id = create_room(world, "cross-line-dialogue", HUB_ROOM, [])
    assert status == 200 and room_id, page
    return room_id


@pytest.mark.parametrize(("options", "says"), [
    ({"name": HUB_ROOM}, "one of the hub's rooms"),
    ({"name": "Nistru consultatіon: crossings"}, "two alphabets"),  # Cyrillic і
    ({"name": "Crossline notices"}, "'crossline'"),
    ({"name": "Tea", "topic": CONSULTATION_NOTE}, "one of the hub's rooms"),
    ({"name": "Notices", "room_alias_name": "crossline-notices"}, "Room addresses"),
])
def test_a_look_alike_of_a_hub_room_is_refused(world, hub_room, options, says):
    maker = _fresh(world, "maker")  # Synapse lets one account create 10 rooms in a burst
    assert_refused(attempt(world, maker, "create_room", options=options), says)


def test_a_room_cannot_be_renamed_as_a_hub_room(world, hub_room, jo, jos_room):
    for event_type, content in (("m.room.name", {"name": HUB_ROOM}), ("m.room.topic", {"topic": CONSULTATION_NOTE})):
        assert_refused(attempt(world, jo, "send_state", room_id=jos_room, event_type=event_type, content=content),
                       "one of the hub's rooms")
    assert_ok(attempt(world, jo, "send_state", room_id=jos_room, event_type="m.room.name",
                      content={"name": "Tea on Sunday (autumn)"}))


@pytest.mark.parametrize("alias", ["#crossline-notices", "#consultation-nistru", "#moderators", "#crossline-help"])
def test_members_have_no_room_addresses(world, jo, jos_room, alias):
    server = world.stack.server_name
    assert_refused(attempt(world, jo, "create_alias", alias=f"{alias}:{server}", room_id=jos_room), "Room addresses")


# -- What an invitation carries, and media (issue 26 items 3 and 4) --------------------------------


def test_an_invitation_with_a_reason_is_refused(world, jo, kim):
    room_id = assert_ok(attempt(world, jo, "create_room", options={"name": "Plans"}))["room_id"]
    assert_refused(attempt(world, jo, "invite", room_id=room_id, user_id=kim.user_id,
                           reason="We know who you talked to"), "reason")
    assert_ok(attempt(world, jo, "invite", room_id=room_id, user_id=kim.user_id))


def test_another_lines_member_cannot_be_invited_nor_sent_a_direct_chat(world, ararat, jo, jos_room):  # noqa: F811
    aram = _person(world, ararat[0], ararat[1]["North"], "aram")
    says = "not in your dialogue line"
    assert_refused(attempt(world, jo, "invite", room_id=jos_room, user_id=aram.user_id), says)
    # A direct chat, as Element starts one.
    assert_refused(attempt(world, jo, "create_room", options={
        "preset": "trusted_private_chat", "is_direct": True, "invite": [aram.user_id]}), says)


def test_a_member_she_shares_no_room_with_cannot_invite_her(world, jo, jos_room):
    stranger = _fresh(world, "lea")  # her line, but no room in common: the default choice refuses
    assert_refused(attempt(world, jo, "invite", room_id=jos_room, user_id=stranger.user_id), NOT_NOW)


def _sharing_a_room(world, *prefixes: str) -> list[Member]:
    people = [_fresh(world, prefix) for prefix in prefixes]
    share_a_room(world, {person.user_id: person.token for person in people})
    return people


def test_after_she_declines_the_same_person_cannot_invite_her_again(world):
    dana, vera, olga = _sharing_a_room(world, "dana", "vera", "olga")
    room_id = assert_ok(attempt(world, dana, "create_room", options={"name": "Coffee"}))["room_id"]
    assert_ok(attempt(world, dana, "invite", room_id=room_id, user_id=vera.user_id))
    assert_ok(attempt(world, vera, "leave", room_id=room_id))  # Element's Decline
    for _ in range(3):
        assert_refused(attempt(world, dana, "invite", room_id=room_id, user_id=vera.user_id), NOT_NOW)
    # Someone else she shares a room with still can.
    olgas = assert_ok(attempt(world, olga, "create_room", options={"name": "Walk"}))["room_id"]
    assert_ok(attempt(world, olga, "invite", room_id=olgas, user_id=vera.user_id))


def test_an_ignored_persons_invitation_is_refused(world):
    ivo, iris = _sharing_a_room(world, "ivo", "iris")
    status, data = matrix(world.stack.homeserver_url, "PUT",
                          f"{CLIENT}/user/{iris.user_id}/account_data/m.ignored_user_list", iris.token,
                          {"ignored_users": {ivo.user_id: {}}})
    assert status == 200, data
    room_id = assert_ok(attempt(world, ivo, "create_room", options={"name": "Lunch"}))["room_id"]
    assert_refused(attempt(world, ivo, "invite", room_id=room_id, user_id=iris.user_id), NOT_NOW)


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_clear_picture_upload_is_refused_and_an_encrypted_one_works(world, jo):
    assert_refused(attempt(world, jo, "upload", content_base64=_png(), content_type="image/png", name="me.png"),
                   "readable image", status=400)
    # What Element uploads for an attachment in an encrypted room: ciphertext, as random as it gets.
    encrypted = base64.b64encode(os.urandom(4096)).decode()
    result = assert_ok(attempt(world, jo, "upload", content_base64=encrypted, content_type="application/octet-stream",
                               name="encrypted"))
    assert result["content_uri"].startswith("mxc://")


def test_profile_and_room_pictures_are_refused(world, jo, jos_room):
    url = f"mxc://{world.stack.server_name}/somepicture"
    assert_refused(attempt(world, jo, "set_avatar_url", url=url), "avatar")
    assert_refused(attempt(world, jo, "send_state", room_id=jos_room, event_type="m.room.avatar", content={"url": url}),
                   "Pictures for profiles and rooms are not available")


def test_her_client_shows_none_of_the_inviters_words_until_she_joins(world):
    nina, nora = _sharing_a_room(world, "nina", "nora")
    words = f"We know who you talked to {secrets.token_hex(4)}"
    room_id = assert_ok(attempt(world, nina, "create_room", options={"name": words, "topic": words}))["room_id"]
    assert_ok(attempt(world, nina, "invite", room_id=room_id, user_id=nora.user_id))
    shown = assert_ok(attempt(world, nora, "room_as_shown", room_id=room_id))
    assert shown["membership"] == "invite" and shown["topic"] is None, shown
    assert words not in json.dumps(shown), shown
    # Once she has joined, the room's name and topic are hers to read.
    assert_ok(attempt(world, nora, "join", room_id=room_id))
    shown = assert_ok(attempt(world, nora, "room_as_shown", room_id=room_id))
    assert shown["membership"] == "join" and shown["name"] == shown["topic"] == words, shown
