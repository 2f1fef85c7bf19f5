"""What a member cannot do on a Crossline homeserver, each refused with a clear error."""

from __future__ import annotations

import re

import pytest

from crossline import secrets as secret_files
from crossline.clock import token_hash
from tests.conftest import ALICE, create_room, issue_invitation
from tests.support import WebSession, login, matrix, register_like_element

pytestmark = pytest.mark.synapse

CLIENT = "/_matrix/client/v3"


@pytest.fixture(scope="module")
def alice_token(world) -> str:
    return login(world.stack.homeserver_url, "alice", ALICE[1])


def test_rooms_a_member_creates_are_encrypted_and_invite_only(world, alice_token):
    hs = world.stack.homeserver_url
    status, data = matrix(hs, "POST", f"{CLIENT}/createRoom", alice_token, {"name": "just us"})
    assert status == 200, data
    state = matrix(hs, "GET", f"{CLIENT}/rooms/{data['room_id']}/state", alice_token)[1]
    by_type = {event["type"]: event["content"] for event in state}
    assert by_type["m.room.encryption"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert by_type["m.room.join_rules"]["join_rule"] == "invite"


@pytest.mark.parametrize(
    "request_body, says",
    [
        ({"preset": "public_chat"}, "invite-only"),
        ({"visibility": "public"}, "public room directory"),
        ({"initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "none"}}]},
         "must be end-to-end encrypted"),
        ({"initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}}]},
         "invite-only"),
    ],
)
def test_public_or_unencrypted_rooms_are_refused(world, alice_token, request_body, says):
    status, data = matrix(world.stack.homeserver_url, "POST", f"{CLIENT}/createRoom", alice_token, request_body)
    assert status == 403, data
    assert says in data["error"]


def test_an_existing_room_cannot_be_opened_up_or_published(world, alice_token):
    hs = world.stack.homeserver_url
    room_id = matrix(hs, "POST", f"{CLIENT}/createRoom", alice_token, {})[1]["room_id"]
    status, data = matrix(hs, "PUT", f"{CLIENT}/rooms/{room_id}/state/m.room.join_rules/", alice_token,
                          {"join_rule": "public"})
    assert status == 403 and "invite-only" in data["error"], data
    status, data = matrix(hs, "PUT", f"{CLIENT}/directory/list/room/{room_id}", alice_token, {"visibility": "public"})
    assert status == 403 and "cannot be published" in data["error"], data


def test_plaintext_messages_are_refused(world, alice_token):
    hs = world.stack.homeserver_url
    room_id = matrix(hs, "POST", f"{CLIENT}/createRoom", alice_token, {})[1]["room_id"]
    status, data = matrix(hs, "PUT", f"{CLIENT}/rooms/{room_id}/send/m.room.message/plain1", alice_token,
                          {"msgtype": "m.text", "body": "this must never be stored in clear"})
    assert status == 403, data
    assert "Unencrypted messages are refused" in data["error"]
    # An encrypted event type is accepted (the content is opaque to the server).
    status, data = matrix(hs, "PUT", f"{CLIENT}/rooms/{room_id}/send/m.room.encrypted/enc1", alice_token,
                          {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "opaque", "sender_key": "k",
                           "device_id": "D", "session_id": "s"})
    assert status == 200, data


def test_inviting_an_account_the_hub_does_not_know_is_refused(world, alice_token):
    stack = world.stack
    # An account made outside the hub's invitations (by the server operator's shared secret).
    shared = secret_files.read_secret(stack.data_dir / "secrets", secret_files.REGISTRATION_SHARED_SECRET)
    outsider = _register_outsider(stack.synapse_socket, shared, "outsider", "outsider password 1")
    room_id = matrix(stack.homeserver_url, "POST", f"{CLIENT}/createRoom", alice_token, {})[1]["room_id"]
    status, data = matrix(stack.homeserver_url, "POST", f"{CLIENT}/rooms/{room_id}/invite", alice_token,
                          {"user_id": outsider})
    assert status == 403, data
    assert "not a member of this Crossline hub" in data["error"]
    # ... and the outsider cannot invite members either.
    outsider_token = login(stack.homeserver_url, "outsider", "outsider password 1")
    status, data = matrix(stack.homeserver_url, "POST", f"{CLIENT}/createRoom", outsider_token,
                          {"invite": [stack.user_id("alice")]})
    assert status == 403 and "Only members of this Crossline hub can invite" in data["error"], data


def _register_outsider(hs: str, shared_secret: str, localpart: str, password: str) -> str:
    import hashlib
    import hmac

    nonce = matrix(hs, "GET", "/_synapse/admin/v1/register")[1]["nonce"]
    mac = hmac.new(shared_secret.encode(), b"\x00".join(x.encode() for x in (nonce, localpart, password, "notadmin")),
                   hashlib.sha1).hexdigest()
    status, data = matrix(hs, "POST", "/_synapse/admin/v1/register", body={
        "nonce": nonce, "username": localpart, "password": password, "admin": False, "mac": mac})
    assert status == 200, data
    return data["user_id"]


def test_registration_needs_a_valid_token(world):
    hs = world.stack.homeserver_url
    status, data = register_like_element(hs, "mallory", "mallory password 1", "not-a-real-token")
    assert status == 401 and data.get("errcode") == "M_UNAUTHORIZED", data
    status, data = matrix(hs, "POST", f"{CLIENT}/register", body={"username": "mallory", "password": "x" * 12,
                                                               "auth": {"type": "m.login.dummy"}})
    assert status == 401, data


def test_a_used_invitation_is_refused_clearly(world):
    stack = world.stack
    link = issue_invitation(world.admin, world.line_id, world.side_ids["Left bank"])
    code = link.rsplit("/", 1)[1]
    status, data = register_like_element(stack.homeserver_url, "carla", "carla password 12", code)
    assert status == 200, data
    # The same code a second time: on the hub page and in a Matrix client.
    visitor = WebSession(stack.hub_url)
    status, page = visitor.get(f"/join/{code}")
    assert status == 410 and "already been used" in page
    status, data = register_like_element(stack.homeserver_url, "dana", "dana password 123", code)
    assert status == 401, data
    # Carla became a member of the left bank; the claim left by the Synapse module is consumed.
    page = world.admin.get(f"/lines/{world.line_id}")[1]
    assert stack.user_id("carla") in page
    assert not (stack.data_dir / "synapse" / "registration-claims" / token_hash(code)).exists()


def test_an_unknown_invitation_link_is_refused_clearly(world):
    status, page = WebSession(world.stack.hub_url).get("/join/not-a-real-code")
    assert status == 410 and "not valid" in page


def test_a_participant_cannot_issue_invitations_or_create_rooms(world):
    stack = world.stack
    # Bella is a participant: she logs in with her Matrix password (checked by Synapse), which
    # opens the participant pages only.
    visitor = WebSession(stack.hub_url)
    status, page = visitor.submit("/login", "/login", {"username": "bella", "password": "not her password at all"})
    assert status == 401 and "do not match" in page
    status, page, landed = visitor.request("GET", "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    status, page, landed = visitor.request("POST", "/login", {"csrf_token": token, "username": "bella",
                                                               "password": "bella password for tests"})
    assert status == 200 and landed.endswith("/participate"), landed
    status, page, landed = visitor.request("GET", f"/lines/{world.line_id}")
    assert landed.endswith("/participate") and "invitation" not in page.lower()
    status, page, _ = visitor.request("POST", f"/lines/{world.line_id}/invitations",
                                      {"csrf_token": token, "side_id": str(world.side_ids["Left bank"])})
    assert "invitation-link" not in page


def test_room_from_template_with_bot_member_says_so(world):
    stack = world.stack
    status, page, room_id = create_room(world, "consultation", "Water and bridges", [stack.user_id("alice")])
    assert status == 200 and room_id, page
    token = login(stack.homeserver_url, "alice", ALICE[1])
    matrix(stack.homeserver_url, "POST", f"{CLIENT}/join/{room_id}", token, {})
    members = matrix(stack.homeserver_url, "GET", f"{CLIENT}/rooms/{room_id}/joined_members", token)[1]["joined"]
    assert stack.user_id("crossline-bot") in members
    topic = matrix(stack.homeserver_url, "GET", f"{CLIENT}/rooms/{room_id}/state/m.room.topic/", token)[1]["topic"]
    assert re.search(r"hub bot is a member", topic)
